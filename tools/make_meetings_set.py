"""Writes the project's out-of-domain evaluation set: meeting- and office-style sentences in
CoNLL04's five relations, with people, employers, organisations and cities from many countries
whose names are not in CoNLL04, and some sentences with no fact. Dev and test draw their names
from disjoint pools, so a choice made on dev cannot learn test's names.

    python tools/make_meetings_set.py [--conll04 ../shared/data/conll04] [--out datasets/meetings]

Writes SpERT JSON (`dev.json`, `test.json`), which `streamre synth` reads, each split's names
as one vocabulary file (`dev.names.txt`, `test.names.txt`), and a training set
of the same kind (`train.json`) written apart from them: its own templates, worded otherwise,
and its own names, none of which is in dev or test. The sentences are this project's own; the
output is deterministic.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from streamre.corpus.sources import TOKEN

PEOPLE = [
    "Elena Petrova", "Priya Natarajan", "Kwame Mensah", "Lucia Fernandes", "Jonas Lindqvist",
    "Aiko Tanaka", "Mateo Rojas", "Ngozi Okafor", "Anders Holm", "Fatima Zahra Benali",
    "Oskar Nowak", "Mei Lin Chow", "Rafael Duarte", "Ingrid Solberg", "Tariq Haddad",
    "Chiara Moretti", "Sipho Dlamini", "Hana Novakova", "Arjun Mehta", "Leila Karimi",
    "Tomasz Wojcik", "Yuki Sato", "Amara Diallo", "Henrik Berg", "Sofia Marquez",
    "Dmitri Volkov", "Nadia Rahman", "Emeka Eze", "Clara Schubert", "Vikram Iyer",
    "Astrid Nilsen", "Kenji Watanabe", "Zainab Yusuf", "Pablo Herrera", "Freya Olsen",
    "Bilal Qureshi", "Marta Kowalska", "Thabo Nkosi", "Isabel Cardoso", "Ravi Shankar Pillai",
    "Lena Hoffmann", "Omar Farouk", "Saanvi Reddy", "Matteo Bianchi", "Ayesha Siddiqui",
    "Niklas Becker", "Camila Torres", "Jun Park", "Eszter Farkas", "Kofi Boateng",
    "Maren Dahl", "Diego Salazar", "Anika Sharma", "Petra Horvat", "Samuel Adeyemi",
    "Julia Lindgren", "Hamid Rostami", "Rosa Delgado", "Tobias Krause", "Minh Anh Nguyen",
    "Olga Sokolova", "Karim Mansour", "Beatriz Lima", "Felix Wagner", "Chinedu Obi",
    "Ines Carvalho", "Lars Eriksen", "Mariam Aziz", "Hugo Lefebvre", "Sunita Rao",
    "Emil Jansen", "Valentina Greco", "Jae Won Choi", "Adaeze Nwosu", "Erik Magnusson",
    "Paulina Ruiz", "Yusuf Demir", "Katarina Vukovic", "Rahul Kapoor", "Ingeborg Lund",
]
ORGS = [
    "Spotify", "Infosys", "Volvo", "Nokia", "Siemens", "Unilever", "Deloitte", "Ericsson",
    "Petrobras", "Wipro", "Heineken", "Maersk", "Philips", "Samsung", "Zalando", "Klarna",
    "Tata Steel", "Safaricom", "Dangote Cement", "Embraer", "Novartis", "Accenture", "Rakuten",
    "Atlassian", "Shopify", "Equinor", "Lego", "Adidas", "Vodafone", "Airbus", "Grab",
    "Flipkart", "Nestle", "Roche", "Ikea", "Telenor", "Bosch", "Santander", "Fujitsu",
    "Canva", "Xero", "Naspers", "Ecopetrol", "Mahindra", "Stripe", "Baidu", "Sonos", "Revolut",
]
PLACES = [  # (city, country)
    ("Stockholm", "Sweden"), ("Bangalore", "India"), ("Gothenburg", "Sweden"),
    ("Espoo", "Finland"), ("Munich", "Germany"), ("Rotterdam", "the Netherlands"),
    ("Rio de Janeiro", "Brazil"), ("Pune", "India"), ("Lagos", "Nigeria"), ("Nairobi", "Kenya"),
    ("Copenhagen", "Denmark"), ("Basel", "Switzerland"), ("Tokyo", "Japan"),
    ("Sydney", "Australia"), ("Ottawa", "Canada"), ("Stavanger", "Norway"),
    ("Billund", "Denmark"), ("Herzogenaurach", "Germany"), ("Toulouse", "France"),
    ("Penang", "Malaysia"), ("Mumbai", "India"), ("Vevey", "Switzerland"),
    ("Oslo", "Norway"), ("Stuttgart", "Germany"), ("Madrid", "Spain"), ("Kawasaki", "Japan"),
    ("Wellington", "New Zealand"), ("Cape Town", "South Africa"), ("Bogota", "Colombia"),
    ("Seoul", "South Korea"), ("Krakow", "Poland"), ("Porto", "Portugal"),
    ("Accra", "Ghana"), ("Lyon", "France"), ("Tallinn", "Estonia"), ("Hanoi", "Vietnam"),
    ("Izmir", "Turkey"), ("Zagreb", "Croatia"), ("Manchester", "England"),
    ("Gdansk", "Poland"), ("Kyoto", "Japan"), ("Valencia", "Spain"), ("Aarhus", "Denmark"),
    ("Leipzig", "Germany"), ("Cairo", "Egypt"), ("Monterrey", "Mexico"),
]
ROLES = ["a data scientist", "an engineer", "a product manager", "a designer", "an analyst",
         "a consultant", "the head of sales", "a project lead", "an architect", "a recruiter"]

# A template: its text with {P}, {Q} (people), {O} (an organisation), {L} (a city), {C} (its
# country), {R} (a role), and its facts as (head slot, relation, tail slot).
TEMPLATES = [
    ("{P}, {R} at {O}, lives in {L}.", [("P", "Work_For", "O"), ("P", "Live_In", "L")]),
    ("{P} works for {O} now.", [("P", "Work_For", "O")]),
    ("{P} joined {O} last spring as {R}.", [("P", "Work_For", "O")]),
    ("Our contact at {O} is {P}.", [("P", "Work_For", "O")]),
    ("{P} from {O} will present the roadmap tomorrow.", [("P", "Work_For", "O")]),
    ("{O}, based in {L}, signed the contract on Friday.", [("O", "OrgBased_In", "L")]),
    ("{O} has its headquarters in {L}.", [("O", "OrgBased_In", "L")]),
    ("The new client is {O}, a company in {L}.", [("O", "OrgBased_In", "L")]),
    ("{P} moved to {L} in March.", [("P", "Live_In", "L")]),
    ("{P} lives in {L} and works remotely.", [("P", "Live_In", "L")]),
    ("{P} lives in {L} and commutes to the {O} office.", [("P", "Live_In", "L")]),
    ("The offsite is in {L}, {C}, this year.", [("L", "Located_In", "C")]),
    ("{L} is a city in {C}.", [("L", "Located_In", "C")]),
    ("{P} flew in from {L}, {C}, for the kickoff.", [("P", "Live_In", "L"),
                                                     ("L", "Located_In", "C")]),
    ("{P} of {O} said the team in {L} is growing.", [("P", "Work_For", "O")]),
    ("{P}, who runs the {O} office in {L}, called this morning.",
     [("P", "Work_For", "O"), ("O", "OrgBased_In", "L")]),
    ("Police said {P} killed {Q} outside a hotel in {L}.", [("P", "Kill", "Q")]),
    ("{Q} was shot dead by {P} last night.", [("P", "Kill", "Q")]),
    ("A court found that {P} murdered {Q}.", [("P", "Kill", "Q")]),
    ("{P} will send the slides after lunch.", []),
    ("Can {P} share the numbers before the review?", []),
    ("Let's move the standup to half past ten.", []),
    ("I think we should revisit the budget next week.", []),
    ("Please add the action items to the shared document.", []),
]


# The training set's own names and templates: none in the evaluation pools above.
TRAIN_PEOPLE = [
    "Aleksandra Zajac", "Babajide Ogunleye", "Carmen Iglesias", "Dang Van Thanh",
    "Eero Virtanen", "Farhan Chowdhury", "Giedre Kazlauskaite", "Hiroshi Nakamura",
    "Ilse Vermeulen", "Jorge Valdivia", "Kavya Iyengar", "Luka Petrovic", "Mbali Zulu",
    "Noura Al Amiri", "Orla Byrne", "Pedro Almeida", "Qiu Ying", "Rania Haddadin",
    "Sven Ostergaard", "Tatiana Ivanova", "Umar Bello", "Vera Lindholm", "Wanjiru Kamau",
    "Ximena Paredes", "Yannick Dubois", "Zofia Malinowska", "Arvid Sandberg", "Beatrix Kovacs",
    "Cheng Wei", "Dilnoza Karimova", "Esi Owusu", "Filip Novak", "Gulnara Sadykova",
    "Hemi Walker", "Ifeoma Chukwu", "Jakub Dvorak", "Keiko Mori", "Lionel Mbarga",
    "Malin Stromberg", "Nizhoni Begay", "Oyelaran Ade", "Paola Conti", "Rashid Al Tamimi",
    "Selin Yilmaz", "Teodor Ionescu", "Ulla Hakkarainen", "Vusi Mahlangu", "Wiebke Brandt",
]
TRAIN_ORGS = [
    "Tencent", "Ocado", "Vestas", "Ambev", "Natura", "Jollibee", "Telstra", "Daimler", "Orkla",
    "Kone", "Elbit", "Aramex", "Cemex", "Grupo Bimbo", "Skanska", "Tullow Oil", "Zoomcar",
    "Paytm", "Nubank", "Bolt", "Wolt", "Miro", "Personio", "Celonis", "Mercado Libre",
    "Globant", "Jumia", "Andela", "Careem", "Tokopedia", "Gojek", "Swiggy", "Zomato",
]
TRAIN_PLACES = [
    ("Tampere", "Finland"), ("Eindhoven", "the Netherlands"), ("Bergen", "Norway"),
    ("Malmo", "Sweden"), ("Graz", "Austria"), ("Brno", "the Czech Republic"),
    ("Cluj", "Romania"), ("Kaunas", "Lithuania"), ("Nagoya", "Japan"), ("Busan", "South Korea"),
    ("Chennai", "India"), ("Ibadan", "Nigeria"), ("Kumasi", "Ghana"), ("Durban", "South Africa"),
    ("Medellin", "Colombia"), ("Curitiba", "Brazil"), ("Guadalajara", "Mexico"),
    ("Auckland", "New Zealand"), ("Halifax", "Canada"), ("Antwerp", "Belgium"),
    ("Bilbao", "Spain"), ("Turin", "Italy"), ("Nantes", "France"), ("Dresden", "Germany"),
]
TRAIN_TEMPLATES = [
    ("{P} has been with {O} for three years.", [("P", "Work_For", "O")]),
    ("I spoke to {P} at {O} yesterday.", [("P", "Work_For", "O")]),
    ("{P} is {R} with {O}.", [("P", "Work_For", "O")]),
    ("Ask {P} from {O} about the invoice.", [("P", "Work_For", "O")]),
    ("{P} leads the {O} team and is based in {L}.", [("P", "Work_For", "O"),
                                                    ("P", "Live_In", "L")]),
    ("{O} is headquartered in {L}.", [("O", "OrgBased_In", "L")]),
    ("We are visiting {O} in {L} next month.", [("O", "OrgBased_In", "L")]),
    ("{O}, a startup from {L}, wants a demo.", [("O", "OrgBased_In", "L")]),
    ("{P} lives in {L} now.", [("P", "Live_In", "L")]),
    ("{P} is calling in from {L} today.", [("P", "Live_In", "L")]),
    ("{P} grew up in {L}, {C}.", [("P", "Live_In", "L"), ("L", "Located_In", "C")]),
    ("Our team in {L}, {C}, ships the release.", [("L", "Located_In", "C")]),
    ("The conference is in {L} in {C}.", [("L", "Located_In", "C")]),
    ("{P} was killed by {Q} in {L}, the report says.", [("Q", "Kill", "P")]),
    ("{P} shot {Q} during the robbery.", [("P", "Kill", "Q")]),
    ("{P} will join the call late.", []),
    ("Thanks, {P}, that was helpful.", []),
    ("Could you send the agenda before noon?", []),
    ("Let's take the rest of this offline.", []),
    ("The numbers look better than last quarter.", []),
]


def conll04_words(folder: Path) -> set[str]:
    words: set[str] = set()
    for path in folder.glob("*.json"):
        for item in json.loads(path.read_text()):
            words.update(t.casefold() for t in item["tokens"])
    return words


def tokens_of(text: str) -> list[str]:
    return TOKEN.findall(text)


def sentence(template: tuple, names: dict[str, str]) -> dict:
    """One SpERT item: the template filled in, its entities and relations."""
    text, facts = template
    kinds = {"P": "Peop", "Q": "Peop", "O": "Org", "L": "Loc", "C": "Loc"}
    tokens: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    for piece in re.split(r"(\{[A-Z]\})", text):
        slot = piece[1:-1] if re.fullmatch(r"\{[A-Z]\}", piece) else None
        words = tokens_of(names[slot] if slot else piece)
        if slot in kinds and slot not in spans:
            spans[slot] = (len(tokens), len(tokens) + len(words))
        tokens += words
    slots = list(spans)
    entities = [{"type": kinds[s], "start": spans[s][0], "end": spans[s][1]} for s in slots]
    relations = [{"type": r, "head": slots.index(h), "tail": slots.index(t)}
                 for h, r, t in facts]
    return {"tokens": tokens, "entities": entities, "relations": relations}


def build(pool_half: int, count: int, seed: int, banned: set[str]) -> list[dict]:
    def clean(names):
        return [n for n in names if not any(w.casefold() in banned for w in tokens_of(n)
                                            if w[0].isupper())]
    people, orgs = clean(PEOPLE), clean(ORGS)
    places = [p for p in PLACES if clean([p[0]])]
    pick = [people[pool_half::2], orgs[pool_half::2], places[pool_half::2]]
    return filled(TEMPLATES, pick, count, seed)


def build_train(count: int, seed: int) -> list[dict]:
    """The training sentences: their own templates and names, kept out of dev and test."""
    evaluation = {w for n in [*PEOPLE, *ORGS, *(c for c, _ in PLACES)] for w in tokens_of(n)}
    mine = {w for n in [*TRAIN_PEOPLE, *TRAIN_ORGS, *(c for c, _ in TRAIN_PLACES)]
            for w in tokens_of(n)}
    if mine & evaluation:
        raise SystemExit(f"training names share words with dev or test: {mine & evaluation}")
    return filled(TRAIN_TEMPLATES, [TRAIN_PEOPLE, TRAIN_ORGS, TRAIN_PLACES], count, seed)


def filled(templates: list, pick: list, count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    items = []
    for k in range(count):
        template = templates[k % len(templates)]
        p, q = rng.sample(pick[0], 2)
        city, country = rng.choice(pick[2])
        names = {"P": p, "Q": q, "O": rng.choice(pick[1]), "L": city, "C": country,
                 "R": rng.choice(ROLES)}
        items.append(sentence(template, names))
    rng.shuffle(items)
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conll04", default="../shared/data/conll04")
    parser.add_argument("--out", default="datasets/meetings")
    args = parser.parse_args()
    banned = conll04_words(Path(args.conll04))
    if not banned:
        raise SystemExit(f"no CoNLL04 files in {args.conll04}: its words decide which names stay")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for half, split in enumerate(("dev", "test")):
        items = build(half, 150, seed=half, banned=banned)
        (out / f"{split}.json").write_text(json.dumps(items, indent=0) + "\n")
        print(split, len(items), "sentences,", sum(len(i["relations"]) for i in items), "facts")
        # The split's names as one vocabulary (--vocabulary), as a meeting would list them.
        names = dict.fromkeys(" ".join(i["tokens"][e["start"]:e["end"]])
                              for i in items for e in i["entities"])
        (out / f"{split}.names.txt").write_text("".join(f"{n}\n" for n in sorted(names)))
    items = build_train(400, seed=2)
    (out / "train.json").write_text(json.dumps(items, indent=0) + "\n")
    print("train", len(items), "sentences,", sum(len(i["relations"]) for i in items), "facts")


if __name__ == "__main__":
    main()
