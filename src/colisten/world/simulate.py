"""Synthetic world generator: users, podcasts, audiobooks and their interaction logs, written in the
data contract, with the ground truth saved beside it.

Generative story (all of it vectorised; users are simulated in fixed-size chunks, each with its own
random stream spawned from the seed, and each chunk is written as one Parquet part, so memory stays
bounded and the same seed always gives the same world):

- 32 latent topics drive both podcast and audiobook choice. A user's topic taste is a softmax of
  topic base popularity + country shift + age slope + personal noise; the audiobook taste is the
  podcast taste plus extra noise (cross-domain transfer is real but imperfect).
- Items have a topic mixture (one primary topic), a language, a power-law appeal (Zipf rank with
  noise), a publication day (some audiobooks appear during the window) and a title/description
  generated from their topics (`vocab.generate_texts`).
- A choice within a type: topic ~ user taste; language ~ language fit x how much appealing
  content that language has in the topic; item ~ topic weight x appeal within that (language,
  topic). `truth.WorldTruth.affinity` is exactly this probability. Appeal is a Zipf law over ranks
  within each (topic, language), so hits are per taste and Popularity does not explain everything;
  appealing audiobooks are also finished more often (more sessions), which concentrates hours.
- Podcasts: most users follow a handful of shows and stream episodes of them repeatedly, plus a few
  discovery streams; some shows get followed.
- Audiobooks: a share of users adopt audiobooks at some day (before, during or after the window),
  starting a first title that day; then they start new titles at a personal rate (each title
  once: one or a few sessions).
- Weak signals (follow, preview, intent_to_pay) are drawn from the same affinity and then raise the
  odds that the user starts that title later by the paper's figures (+118%, +18%, +13%), relative to
  the odds the user would have had anyway (computed from the user's rate and the pair's affinity).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclasses_fields
from pathlib import Path

import numpy as np
import pyarrow as pa

from colisten.io import save_npz_atomic, write_json_atomic, write_parquet_atomic, write_text_atomic
from colisten.world.truth import ITEM_TYPES, WorldError, base_start_probability, pair_choice_probability
from colisten.world.vocab import COUNTRIES, ITEM_LANGUAGE_SHARE, LANGUAGES, TOPICS, generate_texts

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # fixed first day of every world
DAY_S = 86_400
EVENTS = ("stream", "follow", "preview", "intent_to_pay")
WEAK_AUDIOBOOK_EVENTS = ("follow", "preview", "intent_to_pay")


@dataclass(frozen=True)
class Behaviour:
    """Knobs of the generative process; defaults are calibrated to the paper's observations at the
    default size (see `colisten world stats`). Saved in world.json."""

    topics: int = 32
    # Hidden audience segments per topic: taste lives in topics x segments, but titles and
    # descriptions (and genre codes) only reveal the topic, as real blurbs do not say which
    # audience a title finds. Only co-listening reveals the segment. 1 = text tells everything.
    segments: int = 1
    segment_alpha: float = 0.1  # Dirichlet concentration of an item's mass over a topic's segments
    segment_spread: float = 1.5  # sd of a user's personal segment logits within a topic
    topic_base_sd: float = 0.6  # some topics are bigger than others
    taste_spread: float = 1.7  # sd of a user's personal topic logits: larger = fewer, stronger interests
    country_shift_sd: float = 0.6  # how much the country moves topic tastes
    age_slope_sd: float = 0.5  # per-topic change of the logit per 13 years of age
    audiobook_taste_noise: float = 0.8  # extra noise of the audiobook taste over the podcast taste
    item_alpha: float = 0.15  # Dirichlet concentration of an item's secondary topics
    podcast_zipf: float = 0.9  # appeal = rank^-zipf x lognormal noise
    audiobook_zipf: float = 2.0
    appeal_noise: float = 0.4
    hits_per_language: bool = True  # appeal ranks within (topic, language) rather than topic
    back_catalogue_share: float = 0.0  # items whose appeal is scaled down (a rarely chosen long tail)
    back_catalogue_appeal: float = 0.05
    new_audiobook_share: float = 0.10  # audiobooks published during the window
    new_podcast_share: float = 0.03
    english_weight: float = 0.1  # liking of English content by non-English users (own language = 1)
    other_language_weight: float = 0.01  # liking of content in any other language
    genre_noise: float = 0.10  # share of items whose genre code is a random topic's
    # Shares of an item's title/description words drawn from its own topics and from a random
    # topic (the rest: generic words). Lower text_own_topic = text that says less about the item.
    text_own_topic: float = 0.70
    text_random_topic: float = 0.10
    missing_demographics: float = 0.03  # share of users with null age / null country
    podcast_listener_share: float = 0.88
    podcast_rate_median: float = 0.45  # episodes per day
    podcast_rate_sigma: float = 1.0
    discovery_share: float = 0.15  # podcast streams outside the user's shows
    podcast_follow_prob: float = 0.25
    adopter_share: float = 0.50  # users who ever adopt audiobooks (within the adoption window)
    adoption_window: tuple[float, float] = (-30.0, 130.0)  # adoption day ~ uniform here
    book_rate_median: float = 0.03  # new titles started per day by an adopter, after the first
    book_rate_sigma: float = 1.5
    extra_sessions_median: float = 0.7  # sessions per title = 1 + Poisson(user's mean x completion)
    max_sessions: int = 12  # sessions per title at most
    completion_by_appeal: float = 1.8  # completion = exp(this x (2 x appeal percentile - 1))
    session_gap_days: float = 1.5
    session_minutes_median: float = 35.0
    browse_rate_median: float = 0.003  # weak signals per day of any user
    browse_rate_sigma: float = 1.0
    browse_per_book: float = 1.0  # adopters' extra weak signals per title started
    signal_lead_share: float = 0.3  # adopters who send weak signals before adopting...
    signal_lead_days: float = 21.0  # ...up to this many days before
    signal_mix: tuple[float, float, float] = (0.30, 0.55, 0.15)  # follow, preview, intent_to_pay
    signal_odds_lift: tuple[float, float, float] = (1.18, 0.18, 0.13)  # paper: +118%, +18%, +13%
    boost_delay_days: float = 7.0  # mean delay of a stream caused by a weak signal

    @property
    def latent_topics(self) -> int:
        """Size of the taste space: topics x hidden segments."""
        return self.topics * self.segments


@dataclass
class WorldSummary:
    """What `generate_world` wrote."""

    out_dir: Path
    users: int
    podcasts: int
    audiobooks: int
    days: int
    seed: int
    events: int
    events_by_type: dict[str, int]
    parts: int
    seconds: float
    behaviour: Behaviour = field(default_factory=Behaviour)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d


@dataclass
class _TypeCatalogue:
    """One item type's items and the flattened per-(language, topic) choice sampler."""

    offset: int  # global index of the first item of this type
    n: int
    topic_mixture: np.ndarray  # [n, K]
    appeal: np.ndarray
    language: np.ndarray
    published_day: np.ndarray
    primary_topic: np.ndarray
    completion: np.ndarray  # session multiplier from the appeal percentile
    choice_weight: np.ndarray  # [n, K] = mixture x appeal
    topic_norm: np.ndarray  # [L, K] sum over items of language_weight x choice_weight
    language_cum: np.ndarray  # [L*K, L] cumulative P(item language | user language, topic)
    sampler_values: np.ndarray  # group g = language*K + topic; values g + cumulative share
    sampler_items: np.ndarray  # type index of each sampler position


@dataclass
class _Catalogue:
    topic_base: np.ndarray
    country_shift: np.ndarray
    age_slope: np.ndarray
    language_weight: np.ndarray  # [L user, L item]
    types: dict[str, _TypeCatalogue]


def generate_world(
    out_dir: str | Path,
    users: int = 20_000,
    podcasts: int = 5_000,
    audiobooks: int = 1_000,
    days: int = 104,
    seed: int = 0,
    behaviour: Behaviour | None = None,
    chunk_users: int = 4_096,
    progress: Callable[[int, int], None] | None = None,
) -> WorldSummary:
    """Write a world to `out_dir`: items.parquet, users.parquet, interactions/part-*.parquet,
    truth/ and world.json. Same arguments -> byte-identical tables."""
    b = behaviour or Behaviour()
    _check_sizes(users, podcasts, audiobooks, days, b, chunk_users)
    t_start = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise WorldError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "world.json").exists():
        raise WorldError(f"--out {out} is not empty and holds no world.json; give an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    parts_dir = out / "interactions"
    parts_dir.mkdir(exist_ok=True)
    for old in parts_dir.glob("part-*.parquet"):  # a previous world's parts must not mix in
        old.unlink()

    root = np.random.SeedSequence(seed)
    catalogue_seed, *chunk_seeds = root.spawn(1 + math.ceil(users / chunk_users))
    cat_rng = np.random.default_rng(catalogue_seed)
    catalogue, items_table = _build_catalogue(cat_rng, b, audiobooks, podcasts, days)
    write_parquet_atomic(out / "items.parquet", items_table)

    width = max(7, len(str(users - 1)))
    user_ids = pa.array([f"u{i:0{width}d}" for i in range(users)], pa.string())
    item_ids = items_table.column("item_id").combine_chunks()
    event_names = pa.array(EVENTS, pa.string())

    user_parts: list[dict[str, np.ndarray]] = []
    counts = np.zeros(len(EVENTS), dtype=np.int64)
    n_chunks = len(chunk_seeds)
    for c, ss in enumerate(chunk_seeds):
        first = c * chunk_users
        n = min(chunk_users, users - first)
        rng = np.random.default_rng(ss)
        user_arrays, ev = _simulate_chunk(catalogue, b, days, n, rng)
        user_parts.append(user_arrays)
        counts += np.bincount(ev["event"], minlength=len(EVENTS))
        table = _events_table(ev, first, user_ids, item_ids, event_names)
        write_parquet_atomic(parts_dir / f"part-{c:05d}.parquet", table)
        if progress is not None:
            progress(c + 1, n_chunks)

    users_all = {k: np.concatenate([p[k] for p in user_parts]) for k in user_parts[0]}
    write_parquet_atomic(out / "users.parquet", _users_table(users_all, user_ids, b, root))
    _save_truth(out, catalogue, users_all, b, days, items_table)

    summary = WorldSummary(
        out_dir=out,
        users=users,
        podcasts=podcasts,
        audiobooks=audiobooks,
        days=days,
        seed=seed,
        events=int(counts.sum()),
        events_by_type={e: int(n) for e, n in zip(EVENTS, counts, strict=True)},
        parts=n_chunks,
        seconds=round(time.perf_counter() - t_start, 3),
        behaviour=b,
    )
    start_s = int(START.timestamp())
    write_json_atomic(
        out / "world.json",
        {
            **summary.as_dict(),
            "chunk_users": chunk_users,
            "start": START.isoformat(),
            "start_epoch_s": start_s,
            "end_epoch_s": start_s + days * DAY_S,
            "history_days": max(days - 14, 1),
            "holdout_days": min(14, days - 1),
            "generator": "colisten.world.simulate.generate_world",
        },
    )
    return summary


def _check_sizes(users: int, podcasts: int, audiobooks: int, days: int, b: Behaviour, chunk: int) -> None:
    problems = []
    for name, value, low in (("users", users, 2), ("podcasts", podcasts, 1), ("audiobooks", audiobooks, 1)):
        if value < low:
            problems.append(f"--{name} must be at least {low} (got {value})")
    if days < 2:
        problems.append(f"--days must be at least 2 (got {days})")
    if not 1 <= b.topics <= len(TOPICS):
        problems.append(f"topics must be between 1 and {len(TOPICS)} (got {b.topics})")
    own, noise = b.text_own_topic, b.text_random_topic
    if not (own >= 0 and noise >= 0 and own + noise <= 1):  # NaN fails too
        problems.append(
            f"text_own_topic and text_random_topic must be >= 0 with a sum <= 1 (got {own}, {noise})"
        )
    if b.segments < 1:
        problems.append(f"segments must be at least 1 (got {b.segments})")
    if chunk < 1:
        problems.append(f"chunk_users must be positive (got {chunk})")
    if problems:
        raise WorldError("; ".join(problems))


# --------------------------------------------------------------------------------------------
# catalogue


def _build_catalogue(
    rng: np.random.Generator, b: Behaviour, audiobooks: int, podcasts: int, days: int
) -> tuple[_Catalogue, pa.Table]:
    k, s = b.topics, b.segments
    n_lang = len(LANGUAGES)
    topic_base = rng.normal(0.0, b.topic_base_sd, k)
    country_shift = rng.normal(0.0, b.country_shift_sd, (len(COUNTRIES), k))
    age_slope = rng.normal(0.0, b.age_slope_sd, k)
    # segments draw from their own stream, so segments=1 gives exactly the world it always gave
    seg_rng = np.random.default_rng(rng.integers(1 << 62)) if s > 1 else None
    lang_share = np.asarray(ITEM_LANGUAGE_SHARE) / np.sum(ITEM_LANGUAGE_SHARE)
    language_weight = _language_weight(b)

    types: dict[str, _TypeCatalogue] = {}
    columns: dict[str, list] = {c: [] for c in ("item_id", "item_type", "title", "description", "genre")}
    columns |= {"language": [], "published_at": []}
    offset = 0
    for item_type, n, zipf, new_share in (
        ("audiobook", audiobooks, b.audiobook_zipf, b.new_audiobook_share),
        ("podcast", podcasts, b.podcast_zipf, b.new_podcast_share),
    ):
        topic_p = _softmax(topic_base * 0.5)
        primary = rng.choice(k, size=n, p=topic_p)
        focus = rng.beta(4.0, 2.0, size=n)
        secondary = rng.dirichlet(np.full(k, b.item_alpha), size=n)
        text_mixture = (1.0 - focus)[:, None] * secondary
        text_mixture[np.arange(n), primary] += focus
        text_mixture = np.maximum(text_mixture, 1e-9)
        text_mixture /= text_mixture.sum(axis=1, keepdims=True)
        text_primary = primary
        mixture = text_mixture
        if seg_rng is not None:  # split each topic's mass over its hidden segments
            share = seg_rng.dirichlet(np.full(s, b.segment_alpha), size=(n, k))
            mixture = np.maximum((text_mixture[:, :, None] * share).reshape(n, k * s), 1e-12)
            mixture /= mixture.sum(axis=1, keepdims=True)
            primary = primary * s + share[np.arange(n), primary].argmax(axis=1)
        language = rng.choice(n_lang, size=n, p=lang_share)
        # each topic has its own hits: the global top titles do not fit every taste
        appeal = _zipf_within_groups(
            rng, text_primary * n_lang + language if b.hits_per_language else text_primary, zipf
        )
        appeal *= np.exp(rng.normal(0.0, b.appeal_noise, n))
        appeal *= np.where(rng.random(n) < b.back_catalogue_share, b.back_catalogue_appeal, 1.0)
        is_new = rng.random(n) < new_share
        published_day = np.where(is_new, rng.uniform(0.0, days, n), -rng.uniform(1.0, 3000.0, n))
        genre_topic = np.where(rng.random(n) < b.genre_noise, rng.integers(0, k, n), text_primary)
        titles, descriptions = generate_texts(
            rng, text_mixture, item_type, language, b.text_own_topic, b.text_random_topic
        )

        weight = mixture * appeal[:, None]
        z = np.zeros((n_lang, k * s))
        np.add.at(z, language, weight)
        # P(item language | user language, topic) = language weight x supply of that language
        lang_topic = language_weight[:, :, None] * z[None, :, :]  # [L user, L item, K]
        topic_norm = lang_topic.sum(axis=1)
        language_given_topic = (
            (lang_topic / topic_norm[:, None, :]).transpose(0, 2, 1).reshape(n_lang * k * s, n_lang)
        )
        values, items = _choice_sampler(weight, language, n_lang)
        types[item_type] = _TypeCatalogue(
            offset=offset,
            n=n,
            topic_mixture=mixture,
            appeal=appeal,
            language=language,
            published_day=published_day,
            primary_topic=primary,
            completion=np.exp(b.completion_by_appeal * (2.0 * _percentile(appeal) - 1.0)),
            choice_weight=weight,
            topic_norm=topic_norm,
            language_cum=_row_cumsum(language_given_topic),
            sampler_values=values,
            sampler_items=items,
        )
        prefix = "a" if item_type == "audiobook" else "p"
        width = max(6, len(str(n - 1)))
        columns["item_id"] += [f"{prefix}{i:0{width}d}" for i in range(n)]
        columns["item_type"] += [item_type] * n
        columns["title"] += titles
        columns["description"] += descriptions
        codes = [t.bisac if item_type == "audiobook" else t.podcast_category for t in TOPICS]
        columns["genre"] += [codes[g] for g in genre_topic]
        columns["language"] += [LANGUAGES[x] for x in language]
        columns["published_at"] += [
            (START + dt.timedelta(days=float(d))).date().isoformat() for d in published_day
        ]
        offset += n
    table = pa.table({c: pa.array(v, pa.string()) for c, v in columns.items()})
    if s > 1:  # the catalogue's taste shifts act on topics, equally on each of their segments
        topic_base, country_shift, age_slope = (
            np.repeat(x, s, axis=-1) for x in (topic_base, country_shift, age_slope)
        )
    return _Catalogue(topic_base, country_shift, age_slope, language_weight, types), table


def _zipf_within_groups(rng: np.random.Generator, group: np.ndarray, exponent: float) -> np.ndarray:
    """rank^-exponent, with ranks drawn at random within each group."""
    noise = rng.random(group.size)
    order = np.lexsort((noise, group))
    first = np.searchsorted(group[order], group[order], side="left")
    rank = np.empty(group.size)
    rank[order] = np.arange(group.size) - first + 1.0
    return rank ** (-exponent)


def _language_weight(b: Behaviour) -> np.ndarray:
    """How much a user of each language likes content in each language (own language = 1)."""
    n = len(LANGUAGES)
    weight = np.full((n, n), b.other_language_weight)
    weight[:, LANGUAGES.index("en")] = b.english_weight
    np.fill_diagonal(weight, 1.0)
    return weight


def _choice_sampler(weight: np.ndarray, language: np.ndarray, n_lang: int) -> tuple[np.ndarray, np.ndarray]:
    """Flattened cumulative shares per (language, topic) group, offset by the group number, so one
    `searchsorted(values, group + u)` draws an item of any group for a whole batch at once."""
    k = weight.shape[1]
    values, items = [], []
    for lang in range(n_lang):
        members = np.flatnonzero(language == lang)
        if members.size == 0:
            continue
        cum = np.cumsum(weight[members], axis=0)
        cum /= cum[-1:]
        cum[-1] = 1.0
        values.append((cum.T + (lang * k + np.arange(k))[:, None]).ravel())
        items.append(np.tile(members, k))
    return np.concatenate(values), np.concatenate(items)


# --------------------------------------------------------------------------------------------
# users and their behaviour


def _simulate_chunk(
    cat: _Catalogue, b: Behaviour, days: int, n: int, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One chunk of users: their latent traits and all their events (local user indices)."""
    k = b.latent_topics
    country_p = np.asarray([c[2] for c in COUNTRIES])
    country = rng.choice(len(COUNTRIES), size=n, p=country_p / country_p.sum())
    language = np.asarray([LANGUAGES.index(c[1]) for c in COUNTRIES])[country]
    age = np.clip(np.round(rng.normal(38.0, 13.0, n)), 16, 85).astype(np.int64)
    logits = (
        cat.topic_base
        + cat.country_shift[country]
        + ((age - 38.0) / 13.0)[:, None] * cat.age_slope
        + np.repeat(rng.normal(0.0, b.taste_spread, (n, b.topics)), b.segments, axis=1)
    )
    if b.segments > 1:
        logits = logits + rng.normal(0.0, b.segment_spread, (n, k))
    theta = {
        "podcast": _softmax(logits),
        "audiobook": _softmax(logits + rng.normal(0.0, b.audiobook_taste_noise, (n, k))),
    }
    listener = rng.random(n) < b.podcast_listener_share
    rate_z = rng.normal(0.0, 1.0, n)
    podcast_rate = np.exp(math.log(b.podcast_rate_median) + b.podcast_rate_sigma * rate_z) * listener
    adopt_logit = _logit(b.adopter_share) + np.where(listener, 0.5 * rate_z, -1.0)
    adopter = rng.random(n) < 1.0 / (1.0 + np.exp(-adopt_logit))
    adoption_day = np.where(adopter, rng.uniform(*b.adoption_window, n), np.inf)
    book_rate = np.exp(rng.normal(math.log(b.book_rate_median), b.book_rate_sigma, n)) * adopter
    extra_sessions = np.exp(rng.normal(math.log(b.extra_sessions_median), 0.7, n))
    session_s = np.exp(rng.normal(math.log(b.session_minutes_median * 60.0), 0.5, n))
    browse_rate = np.exp(rng.normal(math.log(b.browse_rate_median), b.browse_rate_sigma, n))
    browse_rate = browse_rate + b.browse_per_book * book_rate

    chooser = _Chooser(cat, theta, language, rng)
    parts: list[tuple[np.ndarray, ...]] = []  # (user, global item, event code, day, duration_s)

    # --- podcasts: a few shows per listener, streamed repeatedly; some discovery; some follows
    pod = cat.types["podcast"]
    n_shows = np.where(
        listener, 1 + rng.poisson(1.0 + 3.0 * np.minimum(podcast_rate / b.podcast_rate_median, 4.0)), 0
    )
    show_user = np.repeat(np.arange(n), n_shows)
    show_item = chooser.draw("podcast", show_user)
    show_start = np.where(rng.random(show_user.size) < 0.7, 0.0, rng.uniform(0.0, days, show_user.size))
    show_start = np.maximum(show_start, pod.published_day[show_item])
    keep = show_start < days
    key = show_user[keep] * pod.n + show_item[keep]
    _, first = np.unique(key, return_index=True)  # sorted by (user, item): user-major order
    idx = np.flatnonzero(keep)[first]
    show_user, show_item, show_start = show_user[idx], show_item[idx], show_start[idx]
    show_weight = rng.gamma(0.8, 1.0, show_user.size) + 1e-6

    has_show = np.bincount(show_user, minlength=n) > 0
    n_episodes = rng.poisson(podcast_rate * days * (1.0 - b.discovery_share)) * has_show
    ep_user = np.repeat(np.arange(n), n_episodes)
    ep_show = _pick_in_groups(show_user, show_weight, ep_user, rng)
    ep_day = show_start[ep_show] + rng.random(ep_user.size) * (days - show_start[ep_show])
    parts.append((ep_user, pod.offset + show_item[ep_show], 0, ep_day, _podcast_seconds(rng, ep_user.size)))

    n_discovery = rng.poisson(podcast_rate * days * b.discovery_share)
    d_user = np.repeat(np.arange(n), n_discovery)
    d_day = rng.random(d_user.size) * days
    d_item = chooser.draw("podcast", d_user, day=d_day)
    ok = d_item >= 0
    parts.append((d_user[ok], pod.offset + d_item[ok], 0, d_day[ok], _podcast_seconds(rng, int(ok.sum()))))

    follows = rng.random(show_user.size) < b.podcast_follow_prob
    f_day = show_start[follows] + rng.exponential(5.0, int(follows.sum()))
    ok = f_day < days
    parts.append((show_user[follows][ok], pod.offset + show_item[follows][ok], 1, f_day[ok], np.nan))

    # --- audiobooks: adopters start new titles (each once) at their own rate
    ab = cat.types["audiobook"]
    bk_user, bk_item, bk_day = book_starts(chooser, rng, book_rate, adoption_day, 0.0, float(days))
    order = np.lexsort((bk_day, bk_user * ab.n + bk_item))
    bk_key = (bk_user * ab.n + bk_item)[order]
    first = run_starts(bk_key)
    bk_key, bk_day = bk_key[first], bk_day[order][first]  # keys sorted, earliest start per title

    # --- weak signals on audiobooks, from the same affinity; adopters start sending them early
    sig_from = signal_start(rng, adopter, adoption_day, float(days), b)
    sg_user, sg_item, sg_day = signal_draws(chooser, rng, browse_rate, sig_from, 0.0, float(days))
    bk_key, bk_day = weak_signals(
        chooser, rng, sg_user, sg_item, sg_day, bk_key, bk_day, book_rate, adoption_day, days, b, parts
    )

    # --- sessions of each started title
    parts.append(title_sessions(rng, ab, bk_key, bk_day, extra_sessions, session_s, days, b))

    ev = _concat_parts(parts)
    user_arrays = {
        "theta_podcast": theta["podcast"].astype(np.float32),
        "theta_audiobook": theta["audiobook"].astype(np.float32),
        "language": language.astype(np.int8),
        "country": country.astype(np.int8),
        "age": age.astype(np.int16),
        "podcast_listener": listener,
        "podcast_rate": podcast_rate.astype(np.float32),
        "audiobook_adopter": adopter,
        "adoption_day": adoption_day.astype(np.float32),
        "book_rate": book_rate.astype(np.float32),
        "browse_rate": browse_rate.astype(np.float32),
        "extra_sessions": extra_sessions.astype(np.float32),
        "session_seconds": session_s.astype(np.float32),
    }
    return user_arrays, ev


class _Chooser:
    """Draws items for a batch of (local) users from their true choice distribution."""

    def __init__(self, cat: _Catalogue, theta: dict[str, np.ndarray], language: np.ndarray, rng):
        self.cat = cat
        self.theta = theta
        self.theta_cum = {t: _row_cumsum(v) for t, v in theta.items()}
        self.language = language
        self.rng = rng

    def draw(
        self, item_type: str, users: np.ndarray, day: np.ndarray | None = None, tries: int = 4
    ) -> np.ndarray:
        """Type indices of items; with `day`, items not yet published that day are redrawn a few
        times and then given up (-1)."""
        item = self._draw_once(item_type, users)
        if day is None:
            return item
        published = self.cat.types[item_type].published_day
        for _ in range(tries):
            bad = np.flatnonzero(published[item] > day)
            if bad.size == 0:
                break
            item[bad] = self._draw_once(item_type, users[bad])
        item[published[item] > day] = -1
        return item

    def _draw_once(self, item_type: str, users: np.ndarray) -> np.ndarray:
        tc = self.cat.types[item_type]
        k = self.cat.topic_base.shape[0]
        topic = _sample_rows(self.theta_cum[item_type], users, self.rng)
        lang = _sample_rows(tc.language_cum, self.language[users] * k + topic, self.rng)
        target = (lang * k + topic) + self.rng.random(users.size) * (1.0 - 1e-9)
        pos = np.searchsorted(tc.sampler_values, target, side="right")
        return tc.sampler_items[np.minimum(pos, tc.sampler_items.size - 1)]

    def pair_affinity(self, item_type: str, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        tc = self.cat.types[item_type]
        lang = self.language[users]
        return pair_choice_probability(
            self.theta[item_type][users],
            tc.topic_norm[lang],
            self.cat.language_weight[lang, tc.language[items]],
            tc.choice_weight[items],
        )


# --------------------------------------------------------------------------------------------
# the audiobook process, one span of days at a time: the generator calls each step once for the
# whole window [0, days); the simulated A/B test (colisten.abtest) calls the same steps once per
# simulated day, so its users choose, browse and listen by the code that wrote the logs.


def book_starts(
    chooser: _Chooser,
    rng: np.random.Generator,
    book_rate: np.ndarray,
    adoption_day: np.ndarray,
    t0: float,
    t1: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Organic title starts in [t0, t1): (user, audiobook type index, day), unsorted and with
    repeats (a title the user already started is no new start; callers keep the earliest).

    An adopter starts a first title on their adoption day, then new titles at `book_rate` per day
    (Poisson), each drawn from the true choice model; unpublished titles are redrawn, then given
    up."""
    n = book_rate.size
    active_from = np.clip(adoption_day, t0, t1)
    active_len = t1 - active_from
    n_books = rng.poisson(book_rate * active_len)
    bk_user = np.repeat(np.arange(n), n_books)
    bk_day = active_from[bk_user] + rng.random(bk_user.size) * active_len[bk_user]
    adopting = np.flatnonzero((adoption_day >= t0) & (adoption_day < t1))  # first title on that day
    bk_user = np.concatenate([adopting, bk_user])
    bk_day = np.concatenate([adoption_day[adopting], bk_day])
    bk_item = chooser.draw("audiobook", bk_user, day=bk_day)
    ok = bk_item >= 0
    return bk_user[ok], bk_item[ok], bk_day[ok]


def signal_start(
    rng: np.random.Generator, adopter: np.ndarray, adoption_day: np.ndarray, days: float, b: Behaviour
) -> np.ndarray:
    """Day from which each user sends weak signals: 0, or for adopters up to `signal_lead_days`
    before adopting (a `signal_lead_share` of them), clipped to the window."""
    lead = np.where(rng.random(adopter.size) < b.signal_lead_share, b.signal_lead_days, 0.0)
    return np.where(adopter, np.clip(adoption_day - lead, 0.0, days), 0.0)


def signal_draws(
    chooser: _Chooser,
    rng: np.random.Generator,
    browse_rate: np.ndarray,
    sig_from: np.ndarray,
    t0: float,
    t1: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weak-signal (user, audiobook type index, day) in [max(t0, sig_from), t1), at `browse_rate`
    per day, items drawn from the true choice model."""
    begin = np.maximum(sig_from, t0)
    length = np.clip(t1 - begin, 0.0, None)
    n_signals = rng.poisson(browse_rate * length)
    sg_user = np.repeat(np.arange(browse_rate.size), n_signals)
    sg_day = begin[sg_user] + rng.random(sg_user.size) * length[sg_user]
    sg_item = chooser.draw("audiobook", sg_user, day=sg_day)
    ok = sg_item >= 0
    return sg_user[ok], sg_item[ok], sg_day[ok]


def weak_signals(
    chooser: _Chooser,
    rng: np.random.Generator,
    sg_user: np.ndarray,
    sg_item: np.ndarray,
    sg_day: np.ndarray,
    bk_key: np.ndarray,
    bk_day: np.ndarray,
    book_rate: np.ndarray,
    adoption_day: np.ndarray,
    end: float,
    b: Behaviour,
    parts: list,
) -> tuple[np.ndarray, np.ndarray]:
    """Give each signal its type (follow / preview / intent_to_pay, `signal_mix`), append the
    signal events to `parts`, and add the later starts they cause (`_boost`, up to `end`) to the
    sorted start keys `bk_key` (user * n_audiobooks + item) and their days. Returns the keys, days."""
    ab = chooser.cat.types["audiobook"]
    mix = np.asarray(b.signal_mix) / np.sum(b.signal_mix)
    sg_type = rng.choice(3, size=sg_user.size, p=mix)
    for j, name in enumerate(WEAK_AUDIOBOOK_EVENTS):
        m = sg_type == j
        seconds = rng.uniform(5.0, 30.0, int(m.sum())) if name == "preview" else np.nan
        parts.append((sg_user[m], ab.offset + sg_item[m], EVENTS.index(name), sg_day[m], seconds))
        # the signal raises the odds of a later start of that title (first signal of this type)
        key = sg_user[m] * ab.n + sg_item[m]
        order = np.lexsort((sg_day[m], key))
        key_sorted = key[order]
        lead = run_starts(key_sorted)
        s_key, s_day = key_sorted[lead], sg_day[m][order][lead]
        bk_key, bk_day = _boost(
            s_key,
            s_day,
            bk_key,
            bk_day,
            b.signal_odds_lift[j],
            chooser,
            book_rate,
            adoption_day,
            end,
            b,
            rng,
        )
    return bk_key, bk_day


def title_sessions(
    rng: np.random.Generator,
    ab: _TypeCatalogue,
    bk_key: np.ndarray,
    bk_day: np.ndarray,
    extra_sessions: np.ndarray,
    session_s: np.ndarray,
    end: float,
    b: Behaviour,
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    """Stream sessions of started titles (keys user * n_audiobooks + item, start days) before
    `end`, as a `parts` entry (user, global item, event code 0, day, seconds). Appealing titles get
    finished (more sessions); the long tail is often dropped after one."""
    bk_user, bk_item = bk_key // ab.n, bk_key % ab.n
    n_sess = np.minimum(1 + rng.poisson(extra_sessions[bk_user] * ab.completion[bk_item]), b.max_sessions)
    s_book = np.repeat(np.arange(bk_key.size), n_sess)
    gaps = rng.exponential(b.session_gap_days, s_book.size)
    starts = np.cumsum(n_sess) - n_sess
    gaps[starts] = 0.0
    csum = np.cumsum(gaps)
    s_day = bk_day[s_book] + csum - csum[starts[s_book]]
    ok = s_day < end
    s_book, s_day = s_book[ok], s_day[ok]
    s_seconds = np.clip(
        session_s[bk_user[s_book]] * np.exp(rng.normal(0.0, 0.5, s_book.size)), 60.0, 6 * 3600.0
    )
    return (bk_user[s_book], ab.offset + bk_item[s_book], 0, s_day, s_seconds)


@dataclass(frozen=True)
class ShelfResponse:
    """How a user of the world reacts to a shelf of audiobooks (the simulated A/B test).

    The world's start process is a choice among all titles weighted by true affinity a (which
    sums to 1), at `book_rate` starts per day. Read as a choice with an outside option (start
    nothing), a shelf multiplies the weight of the title at position j (0-based) by
    1 + salience x examine_j, with examine_j = 1 / log2(j + 2) (the user looks at the first slot,
    less at later ones). So on a day with a visit, an adopter starts titles at rate
    book_rate x (1 + salience x sum_j examine_j a_j): the world's organic starts (`book_starts`)
    plus shelf starts at book_rate x salience x sum_j examine_j a_j, each the title in slot j with
    probability proportional to examine_j a_j (`shelf_starts`). A title already started or not yet
    published gives no new start. Nothing here reads any model: the defaults are set a priori."""

    # an examined first slot makes a title 1 + salience times as likely to be chosen as unseen
    salience: float = 10.0
    visit_scale: float = 1.0  # P(visit on a day) = 1 - exp(-visit_scale x the user's events per day)

    def examine(self, k: int) -> np.ndarray:
        return 1.0 / np.log2(np.arange(k) + 2.0)


def visit_probability(
    response: ShelfResponse, podcast_rate: np.ndarray, book_rate: np.ndarray, browse_rate: np.ndarray
) -> np.ndarray:
    """P(the user opens the app on a given day): at least one event of the world's own daily
    rates (podcast episodes, audiobook starts, weak signals), scaled by `visit_scale`."""
    return 1.0 - np.exp(-response.visit_scale * (podcast_rate + book_rate + browse_rate))


def shelf_starts(
    chooser: _Chooser,
    rng: np.random.Generator,
    users: np.ndarray,
    shelf: np.ndarray,
    response: ShelfResponse,
    book_rate: np.ndarray,
    adoption_day: np.ndarray,
    t0: float,
    t1: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Starts caused by a shelf in [t0, t1) (see `ShelfResponse`): `users` (local indices) saw
    `shelf` [n, k] (audiobook type indices, -1 = empty slot). Returns (user, item, day, slot)."""
    ab = chooser.cat.types["audiobook"]
    n, k = shelf.shape
    items = np.maximum(shelf, 0)
    aff = chooser.pair_affinity("audiobook", np.repeat(users, k), items.ravel()).reshape(n, k)
    aff = np.where((shelf >= 0) & (ab.published_day[items] < t1), aff, 0.0)
    weight = response.salience * response.examine(k)[None, :] * aff
    active_from = np.clip(adoption_day[users], t0, t1)
    active_len = t1 - active_from
    n_extra = rng.poisson(book_rate[users] * active_len * weight.sum(axis=1))
    rows = np.repeat(np.arange(n), n_extra)
    day = active_from[rows] + rng.random(rows.size) * active_len[rows]
    if rows.size:
        slot = _sample_rows(_row_cumsum(weight[rows]), np.arange(rows.size), rng)
    else:
        slot = np.zeros(0, np.int64)
    item = shelf[rows, slot]
    ok = ab.published_day[np.maximum(item, 0)] <= day
    return users[rows][ok], item[ok], day[ok], slot[ok]


@dataclass
class WorldProcess:
    """A written world's generative process, rebuilt for simulating more days (colisten.abtest):
    the catalogue from world.json's seed, sizes and behaviour (checked against truth/), the users'
    latent traits from truth/users.npz."""

    catalogue: _Catalogue
    behaviour: Behaviour
    days: int
    users: dict[str, np.ndarray]

    @classmethod
    def load(cls, world_dir: str | Path) -> WorldProcess:
        from colisten.io import read_json

        world_dir = Path(world_dir)
        meta_path = world_dir / "world.json"
        if not meta_path.exists():
            raise WorldError(f"{meta_path} is missing: not a folder written by `colisten world`")
        meta = read_json(meta_path)
        raw = dict(meta.get("behaviour", {}))
        known = {f.name for f in dataclasses_fields(Behaviour)}
        b = Behaviour(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in known})
        catalogue_seed = np.random.SeedSequence(int(meta["seed"])).spawn(1)[0]
        catalogue, _ = _build_catalogue(
            np.random.default_rng(catalogue_seed),
            b,
            int(meta["audiobooks"]),
            int(meta["podcasts"]),
            int(meta["days"]),
        )
        truth = world_dir / "truth"
        for name in ("users.npz", "items.npz"):
            if not (truth / name).exists():
                raise WorldError(f"{truth / name} is missing: `colisten world --out {world_dir}` writes it")
        with np.load(truth / "items.npz") as it:
            saved = it["choice_weight"]
        rebuilt = np.concatenate([catalogue.types[t].choice_weight for t in ITEM_TYPES])
        if saved.shape != rebuilt.shape or not np.allclose(saved, rebuilt, rtol=1e-6, atol=0.0):
            raise WorldError(
                f"{world_dir}: the catalogue rebuilt from world.json does not match truth/items.npz "
                "(written by another version of the generator?)"
            )
        with np.load(truth / "users.npz") as u:
            users = {k: u[k].astype(np.float64) if u[k].dtype.kind == "f" else u[k] for k in u.files}
        return cls(catalogue, b, int(meta["days"]), users)

    def chooser(self, users: np.ndarray, rng: np.random.Generator) -> _Chooser:
        """The world's chooser for these users (indices into truth/users.npz; local index = position)."""
        theta = {t: self.users[f"theta_{t}"][users] for t in ITEM_TYPES}
        return _Chooser(self.catalogue, theta, self.users["language"][users].astype(np.int64), rng)


def _boost(
    s_key: np.ndarray,
    s_day: np.ndarray,
    bk_key: np.ndarray,
    bk_day: np.ndarray,
    lift: float,
    chooser: _Chooser,
    book_rate: np.ndarray,
    adoption_day: np.ndarray,
    days: int,
    b: Behaviour,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Add later starts so that P(start after the signal) has odds x (1 + lift) vs the base process.

    Base: a title the user has not started by day t is started in (t, end] with probability p0 =
    `truth.base_start_probability`. Pairs that already have a start (before or after t) are left
    alone; the others get one with probability (p1 - p0) / (1 - p0).
    """
    n_ab = chooser.cat.types["audiobook"].n
    found, _ = lookup_sorted(bk_key, s_key)
    cand = np.flatnonzero(~found)
    users, items, t = s_key[cand] // n_ab, s_key[cand] % n_ab, s_day[cand]
    affinity = chooser.pair_affinity("audiobook", users, items)
    p0 = base_start_probability(affinity, book_rate[users], adoption_day[users], t, days)
    p0 = np.clip(p0, 0.0, 1.0 - 1e-9)
    begin = np.maximum(t, np.clip(adoption_day[users], 0.0, days))
    remaining = np.clip(days - begin, 0.0, None)
    odds1 = (1.0 + lift) * p0 / (1.0 - p0)
    p1 = odds1 / (1.0 + odds1)
    add = (rng.random(cand.size) < (p1 - p0) / (1.0 - p0)) & (remaining > 0)
    if not add.any():
        return bk_key, bk_day
    length = remaining[add]
    m = b.boost_delay_days
    # delay ~ exponential(mean m) truncated to the days left
    delay = -m * np.log1p(-rng.random(length.size) * (1.0 - np.exp(-length / m)))
    new_day = np.minimum(begin[add] + delay, np.nextafter(float(days), 0.0))
    keys = np.concatenate([bk_key, s_key[cand][add]])
    day = np.concatenate([bk_day, new_day])
    order = np.argsort(keys, kind="stable")
    return keys[order], day[order]


# --------------------------------------------------------------------------------------------
# helpers


def _pick_in_groups(group: np.ndarray, weight: np.ndarray, who: np.ndarray, rng) -> np.ndarray:
    """For each entry of `who`, an index into `group` among rows with group == who, drawn
    proportional to `weight`. `group` must be sorted and contain every value in `who`."""
    if who.size == 0:
        return np.zeros(0, dtype=np.int64)
    csum = np.cumsum(weight)
    starts = np.searchsorted(group, group, side="left")
    ends = np.searchsorted(group, group, side="right") - 1
    before = np.where(starts > 0, csum[starts - 1], 0.0)
    share = (csum - before) / (csum[ends] - before)
    share[ends == np.arange(group.size)] = 1.0
    values = group + share
    target = who + rng.random(who.size) * (1.0 - 1e-9)
    pos = np.searchsorted(values, target, side="right")
    return np.minimum(pos, group.size - 1)


def lookup_sorted(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found, position) of each key in a sorted array; position is valid where found."""
    if sorted_keys.size == 0:
        return np.zeros(keys.size, dtype=bool), np.zeros(keys.size, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[pos] == keys, pos


def run_starts(sorted_values: np.ndarray) -> np.ndarray:
    """True where a run of equal values begins (empty input -> empty mask)."""
    out = np.ones(sorted_values.size, dtype=bool)
    out[1:] = sorted_values[1:] != sorted_values[:-1]
    return out


def _percentile(x: np.ndarray) -> np.ndarray:
    """Rank of each value in [0, 1]."""
    rank = np.empty(x.size)
    rank[np.argsort(x, kind="stable")] = np.arange(x.size)
    return rank / max(x.size - 1, 1)


def _sample_rows(cum: np.ndarray, rows: np.ndarray, rng) -> np.ndarray:
    """Column drawn from each row's categorical distribution (`cum` = row-wise cumulative)."""
    n_cols = cum.shape[1]
    values = (cum + np.arange(cum.shape[0])[:, None]).ravel()
    target = rows + rng.random(rows.size) * (1.0 - 1e-9)
    pos = np.searchsorted(values, target, side="right")
    return np.clip(pos - rows * n_cols, 0, n_cols - 1)


def _row_cumsum(p: np.ndarray) -> np.ndarray:
    cum = np.cumsum(p, axis=1)
    cum /= cum[:, -1:]
    cum[:, -1] = 1.0
    return cum


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _podcast_seconds(rng, n: int) -> np.ndarray:
    return np.clip(np.exp(rng.normal(math.log(1800.0), 0.8, n)), 30.0, 3 * 3600.0)


def _concat_parts(parts) -> dict[str, np.ndarray]:
    users, items, codes, days, secs = [], [], [], [], []
    for u, i, code, d, s in parts:
        users.append(np.asarray(u, np.int64))
        items.append(np.asarray(i, np.int64))
        codes.append(np.full(len(u), code, np.int8))
        days.append(np.asarray(d, np.float64))
        secs.append(np.broadcast_to(np.asarray(s, np.float64), (len(u),)))
    ev = {
        "user": np.concatenate(users),
        "item": np.concatenate(items),
        "event": np.concatenate(codes),
        "day": np.concatenate(days),
        "duration_s": np.concatenate(secs),
    }
    order = np.argsort(ev["day"], kind="stable")
    return {k: v[order] for k, v in ev.items()}


def _events_table(ev: dict[str, np.ndarray], first_user: int, user_ids, item_ids, event_names) -> pa.Table:
    timestamp = int(START.timestamp()) + np.floor(ev["day"] * DAY_S).astype(np.int64)
    duration = ev["duration_s"]
    return pa.table(
        {
            "user_id": user_ids.take(pa.array(ev["user"] + first_user)),
            "item_id": item_ids.take(pa.array(ev["item"])),
            "event": event_names.take(pa.array(ev["event"].astype(np.int64))),
            "timestamp": pa.array(timestamp, pa.int64()),
            "duration_s": pa.array(np.round(duration, 1), pa.float64(), mask=np.isnan(duration)),
        }
    )


def _users_table(
    users: dict[str, np.ndarray], user_ids, b: Behaviour, root: np.random.SeedSequence
) -> pa.Table:
    """Public demographics: a few % of ages and countries are null (missing is allowed)."""
    rng = np.random.default_rng(root.spawn(1)[0])
    n = users["age"].size
    age_missing = rng.random(n) < b.missing_demographics
    country_missing = rng.random(n) < b.missing_demographics
    codes = np.asarray([c[0] for c in COUNTRIES])
    return pa.table(
        {
            "user_id": user_ids,
            "age": pa.array(users["age"].astype(np.int32), pa.int32(), mask=age_missing),
            "country": pa.array(codes[users["country"]].tolist(), pa.string(), mask=country_missing),
        }
    )


def _save_truth(
    out: Path, cat: _Catalogue, users: dict[str, np.ndarray], b: Behaviour, days: int, items: pa.Table
) -> None:
    truth = out / "truth"
    truth.mkdir(exist_ok=True)
    save_npz_atomic(truth / "users.npz", **users)
    tcs = [cat.types[t] for t in ITEM_TYPES]
    save_npz_atomic(
        truth / "items.npz",
        item_id=np.asarray(items.column("item_id").to_pylist()),
        item_type=np.concatenate([np.full(tc.n, c, np.int8) for c, tc in enumerate(tcs)]),
        language=np.concatenate([tc.language for tc in tcs]).astype(np.int8),
        topic_mixture=np.concatenate([tc.topic_mixture for tc in tcs]).astype(np.float32),
        primary_topic=np.concatenate([tc.primary_topic for tc in tcs]).astype(np.int16),
        appeal=np.concatenate([tc.appeal for tc in tcs]),
        choice_weight=np.concatenate([tc.choice_weight for tc in tcs]),
        **{f"topic_norm_{t}": cat.types[t].topic_norm for t in ITEM_TYPES},
        published_day=np.concatenate([tc.published_day for tc in tcs]),
    )
    write_json_atomic(
        truth / "truth.json",
        {
            "topics": [t.name for t in TOPICS[: b.topics]],
            "segments": b.segments,
            "languages": list(LANGUAGES),
            "countries": [c[0] for c in COUNTRIES],
            "item_types": list(ITEM_TYPES),
            "language_weight": cat.language_weight,
            "topic_base": cat.topic_base,
            "country_shift": cat.country_shift,
            "age_slope": cat.age_slope,
            "days": days,
            "start_epoch_s": int(START.timestamp()),
        },
    )
    write_text_atomic(truth / "README.md", TRUTH_README)


TRUTH_README = """# Ground truth of a synthetic world (not part of the data contract)

Written by `colisten world`; read it with `colisten.world.WorldTruth.load(DIR)`.
User index = row of users.parquet (= the number in the user id); item index = row of
items.parquet (sorted by item_type, item_id: audiobooks first, then podcasts). Days count from
`start_epoch_s` (truth.json).

## users.npz (one row per user)
- theta_podcast, theta_audiobook: float32 [users, topics], topic tastes (rows sum to 1). The
  audiobook taste is the podcast taste with extra noise.
- language, country (true values, even where users.parquet hides them), age.
- podcast_listener, podcast_rate (episodes/day), audiobook_adopter, adoption_day (inf = never),
  book_rate (new titles/day after adoption), browse_rate (weak signals/day), extra_sessions,
  session_seconds.

## items.npz (one row per item)
- item_id, item_type (0 = audiobook, 1 = podcast), language, topic_mixture [items, topics],
  primary_topic, appeal (power-law popularity), published_day (negative = before the window).
- choice_weight [items, topics]: topic_mixture x appeal.
- topic_norm_audiobook, topic_norm_podcast [languages, topics]: sum over that type's items of
  language_weight[user language, item language] x choice_weight.

## truth.json
topics, languages, countries, language_weight (rows: user language, columns: item language; 1
for the own language), the catalogue's topic_base, country_shift, age_slope.

## True affinity
affinity(u, i) = language_weight[language_u, language_i]
                 * sum_k theta_{type_i}[u, k] * choice_weight[i, k] / topic_norm_{type_i}[language_u, k]
is the probability that u's next choice of type_i is item i (rows sum to 1 per type). An
adopter starts one title on adoption_day, then title i in a span of d active days with
probability 1 - exp(-book_rate * d * affinity) (`truth.base_start_probability`); a weak signal on
i multiplies the odds of a later start by 2.18 (follow), 1.18 (preview), 1.13 (intent_to_pay).
`WorldTruth.affinity(users, "audiobook")` computes the matrix for you.
"""
