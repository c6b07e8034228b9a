"""Topic vocabularies, genre codes, countries and languages of the synthetic world, and the text
generator that turns an item's latent topic mixture into a title and a description.

Titles and descriptions are real English words drawn mostly from the item's own topics, mixed
with words of random other topics and generic filler, so a sentence encoder recovers the topic
often but not always: text is a real, imperfect signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Topic:
    """One latent topic: a BISAC-like code for audiobooks, a category code for podcasts, its words."""

    name: str
    bisac: str
    podcast_category: str
    words: tuple[str, ...]


def _split(words: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in words.split(","))


def _t(name: str, bisac: str, words: str) -> Topic:
    return Topic(
        name=name, bisac=bisac, podcast_category="PC-" + name.upper().replace("_", "-"), words=_split(words)
    )


TOPICS: tuple[Topic, ...] = (
    _t("mystery", "FIC022000", "detective, murder, clue, suspect, alibi, inspector, case, crime, killer, "
       "witness, evidence, mystery, motive, poison, sleuth, manor, body, disappearance, confession, victim"),
    _t("true_crime", "TRU000000", "serial killer, trial, prosecutor, jury, verdict, forensic, cold case, "
       "prison, convict, kidnapping, fraud, heist, gangster, mafia, cartel, homicide, courtroom, police, "
       "fugitive, investigation"),
    _t("fantasy", "FIC009000", "dragon, wizard, sword, kingdom, magic, spell, quest, elf, throne, prophecy, "
       "sorcerer, realm, knight, enchanted, curse, castle, rune, oracle, amulet, witch"),
    _t("science_fiction", "FIC028000", "starship, galaxy, alien, android, planet, colony, robot, wormhole, "
       "orbit, cyborg, quantum, asteroid, mars, clone, laser, interstellar, space station, dystopia, "
       "hyperdrive, time travel"),
    _t("romance", "FIC027000", "love, heart, kiss, wedding, bride, passion, romance, desire, lover, affair, "
       "billionaire, duke, sweetheart, proposal, flirt, valentine, soulmate, embrace, honeymoon, forever"),
    _t("thriller", "FIC031000", "spy, agent, conspiracy, assassin, hostage, betrayal, mission, bomb, "
       "chase, target, escape, operative, cipher, ambush, pursuit, rogue, sniper, surveillance, "
       "sabotage, countdown"),
    _t("horror", "FIC015000", "ghost, haunted, demon, nightmare, vampire, zombie, blood, scream, graveyard, "
       "possession, monster, darkness, ritual, creature, crypt, phantom, werewolf, cellar, coffin, skull"),
    _t("historical_fiction", "FIC014000", "soldier, queen, revolution, dynasty, rebellion, victorian, "
       "medieval, plague, emperor, tudor, pharaoh, legion, gladiator, crusade, frontier, court, monarch, "
       "merchant, siege, duchess"),
    _t("history", "HIS000000", "ancient, civilization, archive, treaty, historian, empire, rome, greece, "
       "cold war, world war, artifact, chronicle, era, collapse, conquest, explorer, monument, republic, "
       "industrial revolution, archaeology"),
    _t("biography", "BIO000000", "memoir, childhood, legacy, icon, founder, portrait, pioneer, "
       "autobiography, early years, genius, rise, downfall, letters, diary, fame, career, celebrity, "
       "biography, inspiration, life story"),
    _t("business", "BUS000000", "startup, leadership, management, strategy, entrepreneur, company, market, "
       "negotiation, sales, innovation, investor, brand, corporate, profit, ceo, team, venture, marketing, "
       "disruption, pitch"),
    _t("finance", "BUS027000", "money, investing, stocks, wealth, budget, retirement, debt, savings, "
       "crypto, portfolio, dividend, mortgage, inflation, economy, bank, tax, income, trading, bitcoin, "
       "assets"),
    _t("self_help", "SEL000000", "habits, mindset, confidence, motivation, happiness, success, goals, "
       "discipline, purpose, resilience, gratitude, courage, productivity, morning routine, focus, "
       "potential, fear, transformation, clarity, self-esteem"),
    _t("psychology", "PSY000000", "brain, mind, behavior, emotion, memory, anxiety, therapy, trauma, "
       "personality, cognition, bias, decision making, instinct, unconscious, perception, depression, "
       "attachment, empathy, stress, addiction"),
    _t("science", "SCI000000", "physics, universe, evolution, atom, chemistry, theory, experiment, "
       "discovery, cosmos, gene, biology, relativity, particle, energy, laboratory, scientist, fossil, "
       "black hole, gravity, telescope"),
    _t("technology", "COM000000", "software, computer, internet, algorithm, data, artificial intelligence, "
       "code, programming, hacker, silicon valley, smartphone, cloud, network, cybersecurity, gadget, "
       "chip, automation, machine learning, blockchain, privacy"),
    _t("health_fitness", "HEA000000", "fitness, workout, nutrition, diet, running, strength, weight loss, "
       "yoga, muscle, health, exercise, marathon, training, protein, longevity, wellness, fasting, cardio, "
       "recovery, stretching"),
    _t("cooking", "CKB000000", "recipe, kitchen, chef, baking, bread, pasta, flavor, spice, dinner, vegan, "
       "dessert, grill, restaurant, wine, cookbook, feast, soup, sauce, cake, coffee"),
    _t("travel", "TRV000000", "road trip, island, adventure, passport, backpacking, mountain, city, "
       "wanderlust, coast, train, desert, guidebook, abroad, culture, map, hike, border, hostel, trail, "
       "nomad"),
    _t("sports", "SPO000000", "football, soccer, basketball, coach, championship, season, league, player, "
       "goal, match, stadium, olympic, tennis, baseball, rivalry, playoff, athlete, golf, boxing, cycling"),
    _t("comedy", "HUM000000", "funny, jokes, comedy, laugh, satire, sketch, improv, hilarious, parody, "
       "stand-up, banter, prank, absurd, sitcom, humor, roast, silly, witty, awkward, punchline"),
    _t("politics", "POL000000", "election, democracy, government, president, policy, parliament, vote, "
       "campaign, senate, law, constitution, debate, populism, diplomacy, nation, rights, protest, reform, "
       "party, politics"),
    _t("spirituality", "REL000000", "faith, prayer, god, soul, spirit, meditation, bible, church, prophet, "
       "grace, sacred, buddha, karma, divine, mindfulness, heaven, scripture, miracle, zen, angel"),
    _t("philosophy", "PHI000000", "ethics, truth, existence, reason, stoic, virtue, plato, logic, meaning, "
       "morality, consciousness, nietzsche, socrates, metaphysics, knowledge, wisdom, being, dialogue, "
       "free will, thought"),
    _t("young_adult", "YAF000000", "teen, high school, prom, friendship, first love, rebel, academy, "
       "chosen one, dare, summer camp, sisters, coming of age, popular, crush, rival, senior year, outcast, "
       "squad, runaway, dorm"),
    _t("children", "JUV000000", "bedtime, bunny, puppy, fairy, pirate, dinosaur, treasure, giggle, "
       "princess, bear, farm, rainbow, moon, kitten, little, brave, forest, unicorn, teddy, lullaby"),
    _t("music", "MUS000000", "band, album, guitar, rock, jazz, song, tour, concert, hip hop, singer, vinyl, "
       "studio, rhythm, melody, punk, orchestra, festival, lyrics, drummer, blues"),
    _t("nature", "NAT000000", "ocean, wildlife, climate, river, bird, wolf, whale, garden, tree, earth, "
       "conservation, wilderness, species, storm, insect, coral, rewilding, soil, glacier, rainforest"),
    _t("parenting", "FAM000000", "parenting, baby, mother, father, toddler, marriage, family, children, "
       "sibling, divorce, teenager, pregnancy, grandparents, kids, bond, household, tantrum, newborn, "
       "generation, motherhood"),
    _t("arts", "ART000000", "painting, museum, artist, design, film, cinema, theater, poetry, sculpture, "
       "photography, fashion, architecture, literature, gallery, creativity, director, actor, masterpiece, "
       "opera, dance"),
    _t("military", "HIS027000", "battle, army, navy, general, invasion, regiment, commando, resistance, "
       "tank, frontline, veteran, medal, bomber, submarine, warfare, trench, fighter pilot, marine, "
       "special forces, d-day"),
    _t("learning", "EDU000000", "learn, language, lesson, grammar, vocabulary, study, teacher, exam, "
       "student, course, fluency, speaking, university, skills, practice, reading, writing, classroom, "
       "tutor, pronunciation"),
)  # fmt: skip

GENERIC_WORDS: tuple[str, ...] = _split(
    "story, life, world, secret, night, time, day, journey, last, new, great, little, lost, hidden, "
    "untold, complete, guide, inside, beyond, return, first, final, house, road, book, light, truth, "
    "voice, year, edge, people, place, things, everything, nothing, home, end, beginning"
)

FIRST_NAMES = _split(
    "Anna, Ben, Clara, David, Elena, Felix, Grace, Hugo, Ines, Jonas, Kate, Leo, Maya, Nils, Olivia, "
    "Pablo, Quinn, Rosa, Sam, Tara, Umar, Vera, Will, Xenia, Yusuf, Zoe"
)
LAST_NAMES = _split(
    "Andersson, Baker, Costa, Dubois, Evans, Fischer, Garcia, Hughes, Ito, Jensen, Klein, Lopez, Martin, "
    "Nakamura, Okafor, Petrov, Rossi, Schmidt, Silva, Taylor, Urban, Vogel, Weber, Young"
)

# Languages of content; countries with their population share and main language.
LANGUAGES: tuple[str, ...] = ("en", "de", "es", "fr", "pt", "sv", "it")
LANGUAGE_NAMES = {
    "en": "English",
    "de": "German",
    "es": "Spanish",
    "fr": "French",
    "pt": "Portuguese",
    "sv": "Swedish",
    "it": "Italian",
}
# Title-leading article per language: gives the title a faint language cue.
LANGUAGE_ARTICLES = {"en": "The", "de": "Der", "es": "El", "fr": "Le", "pt": "O", "sv": "Den", "it": "Il"}
ITEM_LANGUAGE_SHARE = (0.50, 0.12, 0.12, 0.08, 0.08, 0.05, 0.05)

COUNTRIES: tuple[tuple[str, str, float], ...] = (
    ("US", "en", 0.28),
    ("GB", "en", 0.08),
    ("CA", "en", 0.04),
    ("AU", "en", 0.03),
    ("DE", "de", 0.10),
    ("AT", "de", 0.02),
    ("ES", "es", 0.06),
    ("MX", "es", 0.07),
    ("FR", "fr", 0.07),
    ("BR", "pt", 0.09),
    ("SE", "sv", 0.08),
    ("IT", "it", 0.08),
)

_AUDIOBOOK_TITLES = (
    "{A} {t} of the {t}",
    "{g} {t}",
    "{A} {g} {t}",
    "{t} and {t}",
    "{A} {t} {g}",
    "{t}: a {g} of {t}",
    "Beyond the {t}",
    "{A} Last {t}",
    "Into the {t}",
    "{n}'s {t}",
    "{A} {t}",
)
_PODCAST_TITLES = (
    "{A} {t} Show",
    "{t} Talk",
    "{t} Weekly",
    "{t} & {t}",
    "{A} {t} Podcast",
    "{g} {t} Hour",
    "Daily {t}",
    "{t} Uncovered",
    "Talking {t}",
    "{t} Radio",
    "{n} on {t}",
)
_AUDIOBOOK_SENTENCES = (
    "A {g} novel about {t}, {t} and {t}.",
    "When a {t} meets a {t}, everything about {t} changes.",
    "From the author of {T}, a {g} {t} story that explores {t} and {t}.",
    "Perfect for fans of {t} and {t}.",
    "An unforgettable {g} of {t}, {t} and {g}.",
    "The {g} account of {t} and {t} that readers could not put down.",
    "Narrated by {n}.",
)
_PODCAST_SENTENCES = (
    "Each week {n} talks {t}, {t} and {t}.",
    "Conversations about {t} and {t} with {g} guests.",
    "Join us for {t}, {t} and a little {t}.",
    "The {g} podcast about {t} and {t}.",
    "New episodes every week, hosted by {n}.",
    "Stories of {t}, {t} and {g}.",
)

# How a word slot of an item's text is filled by default: from the item's own topic mixture, from a
# random topic (noise), or from the generic filler words (no signal). Behaviour.text_own_topic and
# Behaviour.text_random_topic override them per world.
TEXT_OWN_TOPIC = 0.70
TEXT_RANDOM_TOPIC = 0.10


def generate_texts(
    rng: np.random.Generator,
    topic_mixture: np.ndarray,
    item_type: str,
    language: np.ndarray,
    own_topic: float = TEXT_OWN_TOPIC,
    random_topic_share: float = TEXT_RANDOM_TOPIC,
) -> tuple[list[str], list[str]]:
    """Title and description for each item, with words drawn from its topic mixture plus noise.

    `topic_mixture` is [n_items, n_topics] (rows sum to 1), `language` the language index of each
    item; `own_topic` / `random_topic_share` are the shares of word slots filled from the item's
    own topics / from a random topic (the rest are generic words). Randomness is pre-drawn in
    arrays, so the loop below only formats strings.
    """
    n, k = topic_mixture.shape
    if k > len(TOPICS):
        raise ValueError(f"at most {len(TOPICS)} topics have vocabularies, got {k}")
    slots = 16
    cum = np.cumsum(topic_mixture, axis=1)
    cum /= cum[:, -1:]
    own = (rng.random((n, slots))[..., None] > cum[:, None, :]).sum(-1).clip(0, k - 1)
    random_topic = rng.integers(0, k, size=(n, slots))
    u = rng.random((n, slots))
    slot_topic = np.where(u < own_topic, own, random_topic)
    generic = u >= own_topic + random_topic_share
    word_pick = rng.integers(0, 1 << 30, size=(n, slots))
    generic_pick = rng.integers(0, len(GENERIC_WORDS), size=(n, slots))
    name_pick = rng.integers(0, 1 << 30, size=(n, 4))
    title_templates = _AUDIOBOOK_TITLES if item_type == "audiobook" else _PODCAST_TITLES
    sentences = _AUDIOBOOK_SENTENCES if item_type == "audiobook" else _PODCAST_SENTENCES
    template_pick = rng.integers(0, 1 << 30, size=(n, 5))
    n_sentences = rng.integers(2, 4, size=n)
    language_sentence = rng.random(n) < 0.5

    titles: list[str] = []
    descriptions: list[str] = []
    for i in range(n):
        pos = 0

        def topic_word(i: int = i) -> str:
            nonlocal pos
            j = pos % slots
            pos += 1
            if generic[i, j]:
                return GENERIC_WORDS[generic_pick[i, j]]
            words = TOPICS[slot_topic[i, j]].words
            return words[word_pick[i, j] % len(words)]

        def generic_word(i: int = i) -> str:
            nonlocal pos
            j = pos % slots
            pos += 1
            return GENERIC_WORDS[generic_pick[i, j]]

        def name(m: int, i: int = i) -> str:
            v = int(name_pick[i, m])
            return f"{FIRST_NAMES[v % len(FIRST_NAMES)]} {LAST_NAMES[(v >> 8) % len(LAST_NAMES)]}"

        lang = LANGUAGES[int(language[i])]
        article = LANGUAGE_ARTICLES[lang]
        title = _fill(
            title_templates[template_pick[i, 0] % len(title_templates)],
            topic_word,
            generic_word,
            lambda: name(0),
            article,
            "",
        )
        title = _title_case(title)
        if lang != "en" and not title.startswith(article):
            title = f"{article} {title}"
        other_title = _title_case(
            _fill("{A} {t} {g}", topic_word, generic_word, lambda: name(1), article, "")
        )
        parts = []
        for s in range(int(n_sentences[i])):
            template = sentences[template_pick[i, 1 + s] % len(sentences)]
            parts.append(
                _fill(template, topic_word, generic_word, lambda s=s: name(2 + s % 2), "The", other_title)
            )
        if lang != "en" and language_sentence[i]:
            parts.append(f"In {LANGUAGE_NAMES[lang]}.")
        titles.append(title)
        descriptions.append(" ".join(p[0].upper() + p[1:] for p in parts))
    return titles, descriptions


def _fill(template: str, topic_word, generic_word, name, article: str, other_title: str) -> str:
    out = template
    while "{" in out:
        start = out.index("{")
        key = out[start + 1 : out.index("}", start)]
        value = {
            "t": topic_word,
            "g": generic_word,
            "n": name,
            "A": lambda: article,
            "T": lambda: other_title,
        }[key]()
        out = out[:start] + value + out[start + len(key) + 2 :]
    return out.strip()


def _title_case(s: str) -> str:
    small = {"of", "the", "and", "a", "on", "for", "to"}
    words = s.split(" ")
    return " ".join(w if (i > 0 and w in small) else (w[:1].upper() + w[1:]) for i, w in enumerate(words))
