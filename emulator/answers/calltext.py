"""Synthetic call transcripts: support, sales, collections and clinic calls.

Text is generated on demand from a per-transcript seed, so thousands of transcripts cost only
their metadata until someone reads one. Lines are templates with slots filled from small pools;
long calls cycle through the body pools with fillers, at ~150 words per minute of speech.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

WORDS_PER_MINUTE = 150
SCENARIOS = ("support", "sales", "collections", "clinic")

FIRST = (
    "Priya",
    "Marcus",
    "Elena",
    "David",
    "Aisha",
    "Tom",
    "Sofia",
    "James",
    "Mei",
    "Carlos",
    "Hannah",
    "Omar",
    "Grace",
    "Luis",
    "Nina",
    "Peter",
    "Fatima",
    "Ryan",
    "Chloe",
    "Victor",
)
LAST = (
    "Patel",
    "Johnson",
    "Garcia",
    "Nguyen",
    "Schmidt",
    "Okafor",
    "Rossi",
    "Kim",
    "Brown",
    "Silva",
    "Cohen",
    "Murphy",
    "Tanaka",
    "Lopez",
    "Novak",
    "Walsh",
)
COMPANY = {
    "support": "Brightline Internet",
    "sales": "Cloudmetric",
    "collections": "Northgate Recovery Services",
    "clinic": "Riverside Family Clinic",
}
PRODUCT = ("router", "mesh extender", "fiber modem", "streaming box", "mobile hotspot")
PLAN = ("Starter", "Team", "Business", "Enterprise")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
MEDS = ("lisinopril", "metformin", "atorvastatin", "amoxicillin", "levothyroxine")
FILLERS = ("Okay.", "Right.", "Mm-hmm.", "Sure, one moment.", "Got it.", "Yeah.", "I see.")

_OPEN = {
    "support": [
        "Thank you for calling {company}, this is {agent}, how can I help you today?",
        "Hi {agent}, my name is {customer} and my internet keeps dropping every evening.",
        "I'm sorry to hear that. Can you confirm the account number or the email on file?",
        "Sure, it's {email}.",
    ],
    "sales": [
        "Hi {customer}, this is {agent} from {company}, thanks for taking the time today.",
        "Of course. We've been looking at analytics tools for our team of {seats} people.",
        "Great. Can you tell me a bit about what you use today and what is not working?",
    ],
    "collections": [
        "Hello, this is {agent} calling from {company} on a recorded line.",
        "May I speak with {customer}? This is regarding an account balance.",
        "This is {customer}. What is this about?",
        "I need to verify your date of birth before we continue.",
    ],
    "clinic": [
        "Good morning, {company}, this is {agent} speaking.",
        "Hi, this is {customer}, I'm calling to book an appointment and ask about a refill.",
        "Happy to help. Can I have your date of birth to pull up your chart?",
    ],
}
_AGENT = {
    "support": [
        "Let me run a line test on your {product}, it takes about a minute.",
        "I can see {count} disconnects on your line since {day}.",
        "Could you unplug the {product} for thirty seconds and plug it back in?",
        "I'm going to apply a credit of {amount} dollars for the outage.",
        "I can schedule a technician visit for {day} between eight and noon.",
        "The firmware on your {product} is out of date, I'm pushing an update now.",
    ],
    "sales": [
        "Our {plan} plan includes dashboards, alerts and unlimited seats.",
        "For {seats} seats the {plan} plan would be {amount} dollars per month.",
        "We can offer a thirty day trial and a fifteen percent discount on annual billing.",
        "Most teams your size see value within the first two weeks.",
        "I can send a proposal by {day} and set up a call with our solutions engineer.",
        "Security reviews usually take about a week; we are SOC 2 Type II certified.",
    ],
    "collections": [
        "Our records show a past due balance of {amount} dollars.",
        "We can set up a payment plan of {small} dollars a month starting {day}.",
        "I understand this is difficult, and I want to find something that works.",
        "If you pay today we can waive the late fee of {small} dollars.",
        "I am required to inform you that this is an attempt to collect a debt.",
        "Would you like to pay by card or by bank transfer?",
    ],
    "clinic": [
        "Dr. {doctor} has an opening on {day} at ten thirty, does that work?",
        "I see your prescription for {med} has no refills left.",
        "I'll send a refill request to Dr. {doctor}, it usually takes two business days.",
        "Please bring your insurance card and arrive fifteen minutes early.",
        "Is your pharmacy still the one on Main Street?",
        "Your copay for this visit will be {small} dollars.",
    ],
}
_CUSTOMER = {
    "support": [
        "It happens mostly around seven or eight at night when everyone is home.",
        "I already restarted it twice this week and it didn't help.",
        "Honestly this is really frustrating, I work from home.",
        "The lights on the {product} are blinking orange.",
        "Okay, it's back online now, the speed looks better.",
        "Can you make sure I'm not charged for the days it was down?",
    ],
    "sales": [
        "Right now we export spreadsheets every week and it takes hours.",
        "Price is a concern, our budget for this quarter is tight.",
        "Does it integrate with our CRM and with single sign on?",
        "I'd need to run it by our finance lead before we commit.",
        "The trial sounds good, can we start on {day}?",
        "What does onboarding look like for a team our size?",
    ],
    "collections": [
        "I lost my job a couple of months ago and I've been behind on everything.",
        "I didn't know the account was still open, I thought it was settled.",
        "I can't pay the full amount right now.",
        "Can you send me something in writing first?",
        "A payment plan could work if it's under {small} a month.",
        "Please stop calling me at work.",
    ],
    "clinic": [
        "I've had a cough for about two weeks and it's not getting better.",
        "{day} morning works for me.",
        "Yes, same pharmacy, the one on Main Street.",
        "I'm running low on my {med}, I have maybe three days left.",
        "Do I need to fast before the blood test?",
        "My insurance changed in January, I have the new card.",
    ],
}
_CLOSE = {
    "support": [
        "Is there anything else I can help you with today?",
        "No, that's everything, thanks for your help {agent}.",
        "Thank you for calling {company}, have a great evening.",
    ],
    "sales": [
        "I'll send the proposal and the trial link by email today.",
        "Sounds good, talk to you {day}.",
        "Thanks {customer}, have a great day.",
    ],
    "collections": [
        "I've noted the arrangement on your account, you'll get a confirmation letter.",
        "Okay, thank you.",
        "Thank you for your time, goodbye.",
    ],
    "clinic": [
        "You're all set for {day}, we'll text you a reminder the day before.",
        "Thank you so much.",
        "Take care, {customer}, goodbye.",
    ],
}
_THIRD = {
    "support": "Hi, this is {third}, the supervisor, I've read the notes and I'll approve it.",
    "sales": "Hi, {third} here, I lead finance, my main question is the contract length.",
    "collections": "This is {third}, I'm {customer}'s spouse, I handle the bills.",
    "clinic": "Hi, this is {third}, I'm the nurse, I just want to confirm your allergies.",
}


@dataclass(frozen=True)
class Utterance:
    speaker: str
    text: str


def _slots(rng: random.Random, scenario: str) -> dict[str, str]:
    customer = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    return {
        "company": COMPANY[scenario],
        "agent": rng.choice(FIRST),
        "customer": customer,
        "third": rng.choice(FIRST),
        "doctor": rng.choice(LAST),
        "email": customer.lower().replace(" ", ".") + "@example.com",
        "product": rng.choice(PRODUCT),
        "plan": rng.choice(PLAN),
        "day": rng.choice(DAYS),
        "med": rng.choice(MEDS),
        "seats": str(rng.randint(5, 250)),
        "count": str(rng.randint(3, 40)),
        "amount": str(rng.randint(20, 4800)),
        "small": str(rng.randint(15, 200)),
    }


def utterances(rng: random.Random, scenario: str, minutes: int, speakers: int) -> list[Utterance]:
    """A call of ~``minutes`` of speech between an agent (A), a caller (B) and maybe others."""
    slots = _slots(rng, scenario)
    target = max(1, minutes) * WORDS_PER_MINUTE
    out: list[Utterance] = []
    words = 0

    def say(speaker: str, template: str) -> None:
        nonlocal words
        text = template.format(**slots)
        out.append(Utterance(speaker, text))
        words += text.count(" ") + 1

    for i, line in enumerate(_OPEN[scenario]):
        say("A" if i % 2 == 0 else "B", line)
    close_words = sum(len(c.split()) for c in _CLOSE[scenario])
    third_at = target // 2 if speakers >= 3 else -1
    while words < target - close_words:
        if third_at >= 0 and words >= third_at:
            say("C", _THIRD[scenario])
            third_at = -1
        say("A", rng.choice(_AGENT[scenario]))
        slots["day"], slots["small"] = rng.choice(DAYS), str(rng.randint(15, 200))
        reply = rng.choice(_CUSTOMER[scenario])
        say("B", reply if rng.random() > 0.2 else f"{rng.choice(FILLERS)} {reply}")
        if rng.random() < 0.3:
            say("A", rng.choice(FILLERS))
    for i, line in enumerate(_CLOSE[scenario]):
        say("A" if i % 2 == 0 else "B", line)
    return out


def plain_text(parts: list[Utterance]) -> str:
    """The transcript ``text`` field: plain words, no speaker labels or timestamps."""
    return " ".join(u.text for u in parts)
