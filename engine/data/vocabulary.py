"""The words of the synthetic calls: industries, names, and the phrase tables the transcript and
the rationale are rendered from.

Declarative only (no logic), so the wording can be read and edited in one place. Each industry has
its own companies, products and wording, and only the contact reasons that make sense for it
(weights are rough shares of real contact mixes). Slots filled at render time: {company} {product}
{amount} {date} {ref} {device} {item} {service} {other_product}.
"""

INDUSTRIES = {
    "telecom": {
        "companies": ["Nexa Mobile", "BrightWave Telecom", "Skyline Wireless", "Orbit Connect"],
        "products": ["Unlimited Plus plan", "Fiber 500 broadband", "family mobile plan", "5G home internet",
                     "prepaid SIM plan"],
        "ref": ["account number", "phone number on the account"],
        "device": ["router", "phone", "modem"],
        "item": ["new phone", "replacement SIM card", "router"],
        "service": ["internet", "mobile data", "phone signal"],
        "teams": ["billing team", "technical support", "network team", "retention team"],
        "competitors": ["Vertex Mobile", "Pulse Telecom", "Lumen Wireless"],
        "reasons": {
            "billing_dispute": (0.20, [
                "My bill this month is {amount} higher than usual and I didn't change anything on my {product}.",
                "There's a roaming charge of {amount} on my bill, but I haven't left the country.",
                "I was charged {amount} for an international call I never made.",
            ]),
            "technical_issue": (0.18, [
                "My {device} keeps dropping the connection every evening.",
                "Since {date} my {service} has been crawling, I'm paying for the {product} and getting nothing close.",
                "My {device} won't connect to the network at all, it just says no service.",
            ]),
            "service_outage": (0.12, [
                "The {service} has been completely down in my area since {date}.",
                "There's no {service} at all at my house, and my neighbours say theirs is out too.",
            ]),
            "plan_change": (0.10, [
                "I'd like to move from my {product} to something with more data.",
                "I want to downgrade my {product}, I'm not using half of it.",
            ]),
            "cancellation_request": (0.10, [
                "I want to cancel my {product}.",
                "I'm moving abroad and need to close my {product} by {date}.",
            ]),
            "product_inquiry": (0.08, [
                "I'm looking at the {other_product} and wanted to know what's included.",
                "Does the {other_product} work with the phone I already have?",
            ]),
            "account_access": (0.06, [
                "I can't log in to my online account, it says my password is wrong but I just reset it.",
                "The app keeps locking me out of my account.",
            ]),
            "delivery_problem": (0.06, [
                "I ordered a {item} on {date} and it still hasn't arrived.",
                "The tracking for my {item} says delivered, but there's nothing here.",
            ]),
            "refund_request": (0.05, [
                "I returned the {item} two weeks ago and still haven't had my {amount} back.",
                "I paid {amount} for an add-on I cancelled on day one, I want that refunded.",
            ]),
            "fraud_concern": (0.05, [
                "I got a text saying my SIM was swapped, and I didn't do that.",
                "Someone ordered a phone on my account and it wasn't me.",
            ]),
        },
    },
    "banking": {
        "companies": ["Harbor Bank", "Crestline Credit Union", "Meridian Savings", "Northgate Bank"],
        "products": ["checking account", "Platinum credit card", "savings account", "debit card", "personal loan"],
        "ref": ["card number", "account number", "date of birth and postcode"],
        "device": ["mobile banking app", "online banking", "card reader"],
        "item": ["replacement card", "new debit card", "card reader"],
        "service": ["online banking", "the mobile app", "card payments"],
        "teams": ["fraud team", "cards team", "lending team", "account services"],
        "competitors": ["Summit Bank", "Clearwater Bank", "a digital bank"],
        "reasons": {
            "fraud_concern": (0.18, [
                "There are three transactions on my {product} that I didn't make, about {amount} in total.",
                "I just got an alert for a {amount} payment I don't recognise.",
                "Someone called pretending to be from your bank and I think I gave them my details.",
            ]),
            "billing_dispute": (0.16, [
                "You charged me an overdraft fee of {amount}, but I had money in the account.",
                "There's a {amount} annual fee on my {product} that I was told would be waived.",
            ]),
            "account_access": (0.14, [
                "I'm locked out of {service} after entering the wrong passcode.",
                "The one-time code for logging in never arrives on my phone.",
            ]),
            "technical_issue": (0.10, [
                "The {device} crashes every time I try to make a transfer.",
                "My card keeps getting declined at shops even though there's money in the account.",
            ]),
            "delivery_problem": (0.08, [
                "My {item} was supposed to arrive by {date} and it hasn't come.",
                "I've been waiting three weeks for my {item}.",
            ]),
            "refund_request": (0.08, [
                "I want the {amount} late-payment fee refunded, the payment was late because of your system.",
                "A merchant refunded me {amount} a week ago and it still isn't in my account.",
            ]),
            "product_inquiry": (0.10, [
                "What's the interest rate on the {other_product} at the moment?",
                "I'm thinking about opening a {other_product}, what do I need?",
            ]),
            "plan_change": (0.06, [
                "I'd like to switch my {product} to the one without a monthly fee.",
                "Can I increase the limit on my {product}?",
            ]),
            "cancellation_request": (0.06, [
                "I want to close my {product}.",
                "Please close my {product}, I'm moving my money elsewhere.",
            ]),
            "service_outage": (0.04, [
                "{service} has been down all morning and I need to pay rent today.",
                "None of my card payments are going through, is your system down?",
            ]),
        },
    },
    "retail": {
        "companies": ["ShopRight", "Cartwell", "Maple & Finch", "QuickBasket"],
        "products": ["wireless headphones", "standing desk", "coffee machine", "winter jacket", "air fryer",
                     "Prime-style membership"],
        "ref": ["order number", "email on the account"],
        "device": ["website", "app", "checkout page"],
        "item": ["order", "parcel", "package"],
        "service": ["the website", "the app", "checkout"],
        "teams": ["returns team", "delivery team", "payments team", "customer care"],
        "competitors": ["MegaMart", "BuyHub", "the big online store"],
        "reasons": {
            "delivery_problem": (0.24, [
                "My {product} was due on {date} and the {item} still hasn't shown up.",
                "The {item} arrived but the {product} inside is damaged.",
                "Tracking has said 'out for delivery' for four days now.",
            ]),
            "refund_request": (0.18, [
                "I sent the {product} back on {date} and I'm still waiting for my {amount} refund.",
                "I want a refund for the {product}, it stopped working after a week.",
            ]),
            "billing_dispute": (0.12, [
                "I was charged twice for the same {product}, {amount} each time.",
                "My card was charged {amount} for an order I cancelled.",
            ]),
            "product_inquiry": (0.12, [
                "Is the {other_product} back in stock, and does it come in black?",
                "What's the difference between the {product} and the newer model?",
            ]),
            "technical_issue": (0.08, [
                "The {device} gives me an error every time I try to pay.",
                "My discount code won't apply on the {device}.",
            ]),
            "account_access": (0.08, [
                "I can't get into my account, the reset email never arrives.",
                "My account says it's been suspended and I don't know why.",
            ]),
            "cancellation_request": (0.08, [
                "I'd like to cancel my {product} before the next renewal.",
                "Please cancel the order I placed on {date}, I don't need it any more.",
            ]),
            "fraud_concern": (0.06, [
                "There's an order for {amount} on my account that I never placed.",
                "Someone changed the delivery address on my account.",
            ]),
            "plan_change": (0.04, [
                "Can I switch my membership from monthly to yearly?",
                "I want to change my subscription box to every other month.",
            ]),
        },
    },
    "utilities": {
        "companies": ["GreenGrid Energy", "Riverside Water", "PowerHome", "Civic Gas & Electric"],
        "products": ["fixed-rate tariff", "variable tariff", "dual fuel plan", "water service", "green energy plan"],
        "ref": ["account number", "meter number", "supply address"],
        "device": ["smart meter", "in-home display", "prepayment meter"],
        "item": ["smart meter", "new meter", "welcome pack"],
        "service": ["power", "gas supply", "water supply", "electricity"],
        "teams": ["billing team", "metering team", "field engineers", "home moves team"],
        "competitors": ["BrightSpark Energy", "Octave Power", "another supplier"],
        "reasons": {
            "billing_dispute": (0.26, [
                "My bill jumped to {amount} this quarter, that's double what I normally pay.",
                "You've billed me on an estimated reading again and it's way off.",
                "I've been charged {amount} for a period before I even moved in.",
            ]),
            "service_outage": (0.16, [
                "We've had no {service} since {date} and nobody can tell me why.",
                "The {service} keeps cutting out on our street.",
            ]),
            "technical_issue": (0.14, [
                "My {device} stopped sending readings on {date}.",
                "The {device} shows an error code and my top-ups aren't going through.",
            ]),
            "plan_change": (0.12, [
                "My {product} ends next month and I want to move to something cheaper.",
                "I'd like to switch to the {other_product}.",
            ]),
            "cancellation_request": (0.10, [
                "I'm moving out on {date} and need to close the account.",
                "I'm switching suppliers, I need to close my {product}.",
            ]),
            "refund_request": (0.08, [
                "I'm {amount} in credit on my account and I want it paid back.",
                "I overpaid {amount} after the final bill and I'd like a refund.",
            ]),
            "product_inquiry": (0.08, [
                "What does the {other_product} actually cost per unit?",
                "Do you offer solar panel installation with the {other_product}?",
            ]),
            "account_access": (0.04, [
                "I can't log in to see my bills online.",
                "The online account won't accept my {ref}.",
            ]),
            "delivery_problem": (0.02, [
                "The engineer was supposed to fit my {item} on {date} and never turned up.",
            ]),
        },
    },
    "insurance": {
        "companies": ["SafeHarbor Insurance", "Keystone Mutual", "Evergreen Cover", "Atlas Assurance"],
        "products": ["car insurance policy", "home insurance policy", "travel insurance", "pet insurance",
                     "contents cover"],
        "ref": ["policy number", "date of birth and postcode"],
        "device": ["online portal", "claims app"],
        "item": ["policy documents", "green card", "claim pack"],
        "service": ["the claims portal", "the online portal"],
        "teams": ["claims team", "underwriting", "renewals team", "policy services"],
        "competitors": ["Guardian Direct", "CoverQuick", "a comparison site"],
        "reasons": {
            "billing_dispute": (0.20, [
                "My renewal premium went up by {amount} and I haven't made any claims.",
                "You took {amount} from my account twice this month for my {product}.",
            ]),
            "refund_request": (0.14, [
                "I cancelled my {product} in the cooling-off period and still haven't had my {amount} back.",
                "My claim was approved on {date} but the {amount} payout never arrived.",
            ]),
            "plan_change": (0.14, [
                "I need to add my partner as a named driver on my {product}.",
                "I've moved house and need to update my {product}.",
            ]),
            "cancellation_request": (0.12, [
                "I want to cancel my {product}, I've found it cheaper elsewhere.",
                "I sold the car, so I need to cancel the {product}.",
            ]),
            "product_inquiry": (0.12, [
                "Does my {product} cover accidental damage?",
                "What would the excess be on the {other_product}?",
            ]),
            "technical_issue": (0.08, [
                "The {device} won't let me upload photos for my claim.",
                "I keep getting an error when I try to download my documents from the {device}.",
            ]),
            "account_access": (0.08, [
                "I'm locked out of the {device}.",
                "The {device} says my {ref} doesn't match.",
            ]),
            "delivery_problem": (0.06, [
                "I never received my {item} and I need them by {date}.",
                "My {item} went to my old address.",
            ]),
            "fraud_concern": (0.06, [
                "I got a letter about a claim on my {product} that I never made.",
                "Someone's been calling me pretending to be from {company}.",
            ]),
        },
    },
    "airline": {
        "companies": ["SkyBridge Airways", "Aurora Air", "Coastal Airlines", "Polaris Travel"],
        "products": ["return flight to Lisbon", "flight to Chicago", "holiday package to Crete", "business class seat",
                     "frequent flyer membership"],
        "ref": ["booking reference", "frequent flyer number"],
        "device": ["check-in app", "website", "booking page"],
        "item": ["suitcase", "checked bag", "luggage"],
        "service": ["online check-in", "the booking system"],
        "teams": ["baggage services", "refunds team", "reservations", "loyalty team"],
        "competitors": ["JetLine", "Horizon Air", "another airline"],
        "reasons": {
            "refund_request": (0.22, [
                "My {product} was cancelled on {date} and I want my {amount} back, not a voucher.",
                "I was told I'd get a refund of {amount} for the downgrade and it never came.",
            ]),
            "plan_change": (0.18, [
                "I need to move my {product} to a later date.",
                "Can I change the name on my booking? It's spelled wrong.",
            ]),
            "delivery_problem": (0.16, [
                "My {item} didn't arrive with me on {date}.",
                "My {item} came back damaged, the handle is snapped off.",
            ]),
            "billing_dispute": (0.12, [
                "I was charged {amount} for a seat I never selected.",
                "You charged me a {amount} bag fee even though my fare included luggage.",
            ]),
            "cancellation_request": (0.10, [
                "I need to cancel my {product}.",
                "I'd like to cancel my {product}, I can't travel any more.",
            ]),
            "technical_issue": (0.08, [
                "The {device} won't let me check in, it just spins.",
                "I can't download my boarding pass from the {device}.",
            ]),
            "product_inquiry": (0.08, [
                "How much extra baggage can I add to my {product}?",
                "Does the {other_product} include lounge access?",
            ]),
            "account_access": (0.04, [
                "I can't log in to my frequent flyer account.",
                "My loyalty account is showing someone else's name.",
            ]),
            "fraud_concern": (0.02, [
                "Miles have been taken out of my account that I didn't spend.",
            ]),
        },
    },
    "saas": {
        "companies": ["CloudDesk", "Taskly", "DataForge", "PixelCRM"],
        "products": ["Pro plan", "Team plan", "Enterprise plan", "Starter plan"],
        "ref": ["workspace ID", "admin email"],
        "device": ["desktop app", "dashboard", "API integration", "browser extension"],
        "item": ["hardware security key", "licence keys", "onboarding kit"],
        "service": ["the platform", "the dashboard", "the API", "sync"],
        "teams": ["tier 2 support", "billing team", "engineering on-call", "customer success"],
        "competitors": ["WorkHive", "Stackly", "a competitor"],
        "reasons": {
            "technical_issue": (0.24, [
                "Our {device} stopped syncing on {date} and the team can't see each other's changes.",
                "Exports from the {device} come out empty.",
                "The {device} throws an error when we connect it to our calendar.",
            ]),
            "account_access": (0.16, [
                "I'm the admin and I'm locked out of our workspace.",
                "Single sign-on stopped working for our whole team this morning.",
            ]),
            "billing_dispute": (0.14, [
                "We were billed {amount} for 40 seats, we only have 25 users.",
                "You charged us for the {product} after we downgraded.",
            ]),
            "service_outage": (0.12, [
                "{service} has been down for us for two hours.",
                "Nothing loads, is {service} down? Our whole team is stuck.",
            ]),
            "plan_change": (0.10, [
                "We'd like to upgrade from the {product} to the {other_product}.",
                "Can we switch from monthly to annual billing on the {product}?",
            ]),
            "cancellation_request": (0.08, [
                "We want to cancel our {product} at the end of this cycle.",
                "Please cancel our subscription, we're consolidating tools.",
            ]),
            "refund_request": (0.06, [
                "We were auto-renewed for {amount} and we'd like that refunded.",
                "We paid {amount} for the annual {product} by mistake, we wanted monthly.",
            ]),
            "product_inquiry": (0.06, [
                "Does the {other_product} include audit logs?",
                "Is there a limit on API calls on the {product}?",
            ]),
            "fraud_concern": (0.04, [
                "There were logins to our workspace from a country we don't operate in.",
                "Someone added an unknown admin to our account.",
            ]),
        },
    },
}

CUSTOMER_FIRST = ["Maria", "James", "Aisha", "Tom", "Priya", "Daniel", "Chloe", "Hiro", "Fatima", "Luca", "Grace",
                  "Omar", "Sofia", "Ben", "Mei", "Carlos", "Hannah", "Kwame", "Elena", "Ravi", "Nora", "Jack",
                  "Zoe", "Mateo", "Ingrid", "Samuel", "Leila", "Patrick", "Yuki", "Andre"]
CUSTOMER_LAST = ["Garcia", "Smith", "Khan", "Murphy", "Patel", "Nguyen", "Okafor", "Rossi", "Cohen", "Larsen",
                 "Silva", "Brown", "Tanaka", "Dubois", "Novak", "Hughes", "Mensah", "Fischer", "Reyes", "O'Brien"]
AGENT_NAMES = ["Sam", "Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Dana", "Chris", "Lena",
               "Marcus", "Nina", "Owen", "Tessa", "Victor", "Ivy", "Kofi", "Rosa", "Ethan"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
ORDINALS = {2: "second", 3: "third", 4: "fourth", 5: "fifth"}


# ---------------------------------------------------------------------------------------------
# Transcript phrases, by event (``engine.data.render`` picks one per line).
# ---------------------------------------------------------------------------------------------

GREET_PROPER = [
    "Thank you for calling {company}, my name is {agent}. How can I help you today?",
    "Good {daypart}, you're through to {company}, this is {agent} speaking. What can I do for you?",
    "Hi, thanks for calling {company}. I'm {agent}, how can I help?",
    "Welcome to {company} customer support, {agent} here. How may I help you today?",
]
GREET_POOR = ["Yeah, {company}.", "Hello?", "{company}, what do you need?", "Support. Go ahead."]
DISCLOSURE = [
    "Just so you know, this call may be recorded for quality and training purposes.",
    "Before we start, this call is recorded for quality and training.",
    "Please note calls are recorded for quality purposes.",
]
MOOD_OPEN = {
    -2: ["Finally, a human. I'm absolutely fed up.", "I'm furious, honestly.", "This is ridiculous, I've had enough.",
         "I'm really angry right now."],
    -1: ["Hi. I'm a bit frustrated, to be honest.", "Hi, I'm not happy about something.",
         "Hello, I've got a problem and it's getting annoying.", "Hi. This is really frustrating."],
    0: ["Hi, I hope you can help me.", "Hello, I've got a question about my account.", "Hi there.",
        "Hi, yes, thanks."],
    1: ["Hi! Hope you're having a good day.", "Hello, lovely to get through so quickly!",
        "Hi there, thanks for picking up so fast."],
}
NAME_INTRO = ["My name is {customer}.", "It's {customer} here.", "This is {customer}.", "{customer} speaking."]
REPEAT = [
    "This is my {ordinal} call about this.",
    "I've already called {times} about this and nothing has changed.",
    "I'm calling again, this is the {ordinal} time now.",
    "Every time I call I get told it's sorted, and it never is. This is call number {count}.",
]
TENURE_LONG = ["I've been with {company} for {years} years.", "I've been a loyal customer for {years} years.",
               "{years} years I've been with you."]
TENURE_MID = ["I've been with you for about {years} years.", "I've had the account for {years} years or so."]
TENURE_NEW = ["I only signed up a few months ago.", "I joined {company} this year.",
              "I'm a new customer, only a couple of months in."]
VERIFY_ASK = [
    "Before I look into that, can I take your {ref}, please?",
    "Sure, let me pull up your account. Could you confirm your {ref}?",
    "I can help with that. First I need to verify you, what's your {ref}?",
    "Of course. For security, can you give me your {ref}?",
]
VERIFY_GIVE = ["Sure, it's {refval}.", "Yes, {refval}.", "It's {refval}.", "Okay, {refval}."]
VERIFY_OK = ["Thank you, you're verified.", "Perfect, that matches.", "Great, thanks, I've got your account up.",
             "Thanks, {first}, that's all confirmed."]
VERIFY_SKIP = ["Okay, let me just look at that.", "Right, let me see what's going on.", "Fine, I'll check."]
EMPATHY = [
    "I completely understand how frustrating that must be.",
    "That sounds really stressful, I'd feel the same way.",
    "I can hear how annoying this has been for you.",
    "I understand, nobody wants to deal with that.",
    "I hear you, that's not the experience you should be having.",
]
APOLOGY = [
    "I'm really sorry about this.",
    "I apologise for the trouble this has caused.",
    "I'm sorry you've had to go through that.",
    "Sorry about all of this, {first}.",
]
ACK = ["Thank you.", "Okay.", "Thanks, I appreciate that.", "Right.", "Okay, thanks.", "Mm-hm."]
INTERRUPT_CUST = ["And the other thing is that when I tried to—", "But that's not what I— ",
                  "Can I just finish, because the part that—", "Wait, I was saying that the—"]
INTERRUPT_AGENT = ["Yeah, yeah, I get it.", "Okay, okay, I've got the gist.", "Right, I know, let me just stop you there.",
                   "Sure, I understand, moving on."]
INTERRUPT_BACK = ["...okay.", "You're not really listening.", "Fine.", "Let me finish, please."]
TROUBLE = {
    "technical_issue": [
        "Can you close the {device} completely, open it again and tell me what you see?",
        "Let's try signing out of the {device} and back in.",
        "I'm going to push a reset to your {device} from my side, give it a minute.",
        "Could you check whether you're on the latest version of the {device}?",
    ],
    "service_outage": [
        "Let me check the status for your area.",
        "I'm running a line test from here now.",
        "Can you tell me whether any lights on the equipment are red?",
    ],
    "account_access": [
        "I'm going to unlock the account and send a fresh reset link.",
        "Let me clear the failed attempts on your profile.",
        "Can you check your spam folder for the verification message?",
    ],
    "other": [
        "Let me go through the account history with you.",
        "I'm just checking the notes on the account.",
        "Let me look at what happened on {date}.",
    ],
}
TROUBLE_CUST = {
    "technical_issue": ["Okay, done.", "It's doing the same thing.", "Right, it's restarting now.", "Nothing's changed.",
                        "Give me a second... okay."],
    "service_outage": ["Okay.", "All the lights are red, yes.", "Nothing's working here.", "Right."],
    "account_access": ["Okay, I see it.", "Nothing's come through yet.", "Okay, got it.", "Give me a second... okay."],
    "other": ["Okay.", "Sure.", "Mm-hm.", "Go on.", "Right."],
}
POLICY_LINES = {
    "billing_dispute": ["Our policy is that charges are reviewed against the usage records before we adjust them.",
                        "The terms say disputes have to be raised within 60 days of the bill, which you're within."],
    "refund_request": ["Refunds go back to the original payment method and take 3 to 5 business days.",
                       "Under our policy, refunds are processed once the return is checked in."],
    "cancellation_request": ["There's a 30-day notice period on cancellations under the contract.",
                             "Cancelling before the end of the minimum term carries an early exit fee."],
    "plan_change": ["Plan changes take effect from the next billing cycle.",
                    "You can change plans once per billing cycle without a fee."],
    "fraud_concern": ["For your protection I have to block the card while we investigate.",
                      "Our policy is that disputed transactions are investigated within 10 business days."],
    "delivery_problem": ["If an item isn't delivered within 10 days we can send a replacement or refund it.",
                         "Our policy is to open a trace with the courier before we resend."],
}
POLICY_CUST = ["That's a bit annoying, but okay.", "Fine, if that's the rule.", "Okay, I understand.",
               "Nobody told me that before."]
GAP_AGENT = [
    "The {other_product} doesn't include that... actually, sorry, let me check. Yes, it does. My mistake.",
    "I think that takes about a month. Hang on, no, sorry, it's 5 days. I had that wrong.",
    "I'm not sure that's something we offer. Oh wait, it is, sorry, I'm quite new to this.",
]
GAP_CUST = ["So which is it?", "Are you sure this time?", "Okay...", "That's confusing."]
HOLD_ASK = ["Would you mind if I put you on a brief hold while I check?", "Is it okay if I place you on hold for a moment?",
            "Can I put you on hold for a couple of minutes while I look into this?"]
HOLD_ASK_REPLY = ["Sure.", "Yes, that's fine.", "Okay, go ahead.", "Fine."]
HOLD_NOASK = ["Hold on.", "Hang on.", "Wait there.", "One sec."]
HOLD_THANK = ["Thank you for holding for {minutes}, I appreciate your patience.",
              "Thanks so much for waiting, sorry that took {minutes}.",
              "Thanks for your patience, {first}. That was about {minutes}, sorry."]
HOLD_BACK = ["Okay, I'm back.", "Right.", "So.", "Okay, I'm back, so."]
HOLD_COMPLAIN = ["I've been sitting here for {minutes}.", "That was {minutes} on hold.",
                 "{minutes} of that music, seriously."]
TRANSFER_WARM = ["I'm going to bring in our {to}. I'll stay on and explain everything so you don't have to repeat yourself.",
                 "Let me connect you to our {to}; I'll brief them first."]
TRANSFER_WARM_NEW = ["Hi {first}, this is {agent2} from the {to}. {agent} has filled me in, so let's pick up from there.",
                     "Hello {first}, {agent2} here in the {to}. I've got the notes from {agent}."]
TRANSFER_COLD = ["I'll transfer you.", "That's the {to}, I'll put you through.", "You need the {to}. Transferring now."]
TRANSFER_COLD_NEW = ["{to}, {agent2} speaking.", "Hi, {agent2} here. What's this about?", "{agent2}, {to}, how can I help?"]
TRANSFER_COLD_CUST = ["I've already explained all of this once.", "Ugh, do I have to start from the beginning?",
                      "I just told the last person everything."]
RUDE = ["Look, that's not my problem, I just read what's on the screen.",
        "I already told you, there's nothing I can do.",
        "You should have read the terms before you signed up.",
        "Well, maybe if you'd called earlier this wouldn't have happened.",
        "Sir, calm down, you're not the only customer I have today.",
        "I don't make the rules, okay?"]
RUDE_CUST = ["Excuse me? Don't talk to me like that.", "Wow. Great attitude.", "That's a really rude thing to say.",
             "Are you serious?"]
THREAT = ["If this isn't sorted today I'm cancelling.", "Honestly, I'm ready to leave {company} over this.",
          "One more problem and I'm taking my business elsewhere.", "I'm seriously thinking of cancelling everything."]
COMPETITOR = ["{name} offered me a better deal last week.", "{name} keeps sending me offers, and I'm tempted.",
              "My sister switched to {name} and she's had no problems."]
COMPETITOR_AGENT = ["I'd hate to lose you.", "I understand, let's see what I can do.", "I hear you."]
ESCALATE_CUST = ["I want to speak to a supervisor.", "Put me through to your manager, please.",
                 "Can I talk to someone more senior?"]
ESCALATE_AGENT = ["Of course, let me get my supervisor.", "One moment, I'll bring in my team lead."]
ESCALATE_SUP = ["Hi {first}, this is {sup}, I'm a supervisor here. I've read the notes and I'm taking this on personally.",
                "Hello, {sup} here, team lead. I'm sorry about how this went, let me look at it myself."]
REFUND = ["I've applied a {amount} {kind} to your account for the trouble.",
          "I can offer you a {kind} of {amount}, which I've just put through.",
          "As a goodwill gesture I've added a {amount} {kind}."]
REFUND_CUST = ["Thank you, that helps.", "Okay, that's something.", "I appreciate that.", "Fine, thanks."]
RESOLVED = {
    "billing_dispute": ["I've reversed the charge, you'll see it on your next bill.",
                        "That charge was applied in error, I've removed it and corrected the bill."],
    "technical_issue": ["That's done it, the {device} is working normally now.",
                        "I can see it's back online on my side. Is it working for you?"],
    "account_access": ["You should be able to log in now.", "The account's unlocked and the reset link is on its way."],
    "service_outage": ["The engineers have just restored the {service} in your area.",
                       "I've reset the connection from our side and the {service} is back."],
    "delivery_problem": ["I've arranged a replacement that will arrive on {date}.",
                         "The courier has it, it will be with you by {date}, and I've upgraded the shipping."],
    "refund_request": ["I've processed the refund of {amount}; it'll be back in 3 to 5 business days.",
                       "The {amount} refund has gone through, you'll get a confirmation email."],
    "plan_change": ["All done, you're on the {other_product} from the next billing cycle.",
                    "I've made the change; your new plan starts on {date}."],
    "product_inquiry": ["Yes, the {other_product} includes that, and I've emailed you the full details.",
                        "It does, and it's {small_amount} a month extra. I've sent you a summary."],
    "fraud_concern": ["I've blocked the card, cancelled those transactions, and a new one is on its way.",
                      "I've secured the account, reset your access and flagged the activity to our fraud team."],
}
RETAINED = ["Before you go, I can offer you {small_amount} off a month for the next six months if you stay.",
            "What if I move you to the {other_product} at the same price as now?"]
RETAINED_CUST = ["Okay, that works. I'll stay.", "Alright, for that price I'll stay.", "Fine, let's do that then."]
CANCELLED = ["I've processed the cancellation, effective {date}. You'll get a confirmation email.",
             "That's cancelled for you from {date}; the final bill will come next month."]
UNRESOLVED_BY_REASON = {
    "product_inquiry": ["I don't have that information to hand, I'll need to check with the product team.",
                        "I'm honestly not sure, and I can't find it in our system right now."],
    "service_outage": ["I can see there's a fault, but there's no estimate for a fix yet.",
                       "The engineers are still working on it and I don't have a time for you."],
    "delivery_problem": ["I can't see where the parcel is, I'll have to open an investigation with the courier."],
}
UNRESOLVED = ["I'm afraid I can't fix this today.", "Unfortunately that's not something I can sort out on this call.",
              "I'm sorry, the system won't let me do that from here.",
              "I've raised a ticket, but I can't promise when it'll be fixed."]
UNRESOLVED_CUST = ["So I'm still stuck.", "That's not good enough.", "So nothing's fixed.",
                   "Great. So I called for nothing."]
CALLBACK = ["I'll call you back {when} with an update.", "Someone from our specialist team will call you {when}.",
            "I've booked a callback for {when}, and I'll follow it up myself."]
UPSELL = ["While I have you, did you know you could add the {other_product} for just {small_amount} more a month?",
          "By the way, you qualify for the {other_product}, would you like to hear about it?",
          "You might also like our {other_product}; shall I send you the details?"]
UPSELL_OK = ["Maybe later, thanks.", "I'll think about it.", "Send me the details."]
UPSELL_PUSH = ["It's honestly a great deal, I can add it right now.", "Are you sure? It's only today, I can just add it.",
               "Most people in your situation take it, shall I switch you?"]
UPSELL_PUSH_CUST = ["I said no.", "I'm not interested, I just wanted my problem fixed.", "No. Please stop."]
CLOSE_ASK = ["Is there anything else I can help you with today?", "Anything else I can do for you?",
             "Is there anything else on your mind today?"]
CLOSE_PROPER = ["Thank you for calling {company}, {first}. Have a great {daypart}.",
                "Thanks for your patience today, {first}. Take care.",
                "Thanks for calling, {first}, and have a lovely day."]
CLOSE_ABRUPT = ["Okay. Bye.", "Right, that's it then.", "Okay, bye now.", "Alright. *click*"]
MOOD_END = {
    -2: ["This has been a complete waste of time.", "I'm done with this. Unbelievable.",
         "Worst service I've ever had."],
    -1: ["Well, I'm still not happy about it.", "Okay. Not great, but okay.", "I suppose that's it then."],
    0: ["Okay, thanks.", "Alright, that's everything.", "Fine, thank you."],
    1: ["Thanks, that's really helpful.", "Great, thank you for sorting that.", "Brilliant, thanks for your help."],
    2: ["You've been fantastic, thank you so much!", "Thank you, you've made my day!",
        "Honestly, best call I've had with you, thanks!"],
}
SMALL_TALK = [
    ("Customer", "Sorry, my dog's barking in the background.", "Agent", "No worries at all!"),
    ("Agent", "How's your day going otherwise?", "Customer", "Busy, but fine."),
    ("Customer", "Can you hear me okay? The line's a bit crackly.", "Agent", "I can hear you fine, thanks."),
    ("Agent", "Is the weather any better where you are?", "Customer", "Raining, as usual."),
    ("Customer", "Sorry, just give me a second, I'm driving.", "Agent", "Take your time."),
    ("Customer", "Hang on, let me find my glasses.", "Agent", "Of course."),
]


# ---------------------------------------------------------------------------------------------
# Rationale words (``engine.data.reference``).
# ---------------------------------------------------------------------------------------------

REASON_GLOSS = {
    "billing_dispute": ["is disputing a charge on their bill", "questions an unexpected charge",
                        "believes they were billed incorrectly"],
    "technical_issue": ["reports something that is not working technically", "has a technical fault",
                        "cannot get something to work properly"],
    "account_access": ["cannot get into their account", "is locked out of their account",
                       "has a login problem"],
    "service_outage": ["has lost service entirely", "is affected by a service outage",
                       "reports that the service is down"],
    "cancellation_request": ["wants to cancel", "is calling to close their {thing}", "asks to end the service"],
    "delivery_problem": ["has a delivery that is late, missing or damaged", "is chasing a delivery",
                         "did not receive what was sent"],
    "refund_request": ["wants money back", "is chasing a refund", "asks for a refund"],
    "plan_change": ["wants to change their plan", "asks to modify their {thing}", "wants a different plan or option"],
    "product_inquiry": ["is asking about a product", "wants information before buying",
                        "has a question about what a product includes"],
    "fraud_concern": ["reports activity they did not authorise", "suspects fraud on their account",
                      "is worried someone else is using their account"],
}
DEDUCTION_WORDS = {"rude": "the rude remark", "interruption": "interrupting the customer",
                   "knowledge_gap": "the wrong information given", "pushy_upsell": "the pushy upsell"}
MOOD_WORDS = {-2: "angry", -1: "frustrated", 0: "calm", 1: "pleased", 2: "delighted"}
