"""The bundled, SYNTHETIC CoinCap-style samples in ``data_samples/``: generator and reader.

``lab samples`` rewrites ``data_samples/`` from a seed (same seed, same bytes):
20 assets, an hourly geometric random walk per asset from 2025-01-01T00:00Z to
2025-03-31T23:00Z, and one ``/assets`` snapshot per day taken at 23:59:59Z that agrees with
the history. A few defects are planted on purpose (see ``PLANTED_NULLS`` and
``PLANTED_TEXT``) so the silver layer has real cleaning to do.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab_env.paths import SAMPLES_DIR

DEFAULT_SEED = 20250101
SAMPLE_START = dt.date(2025, 1, 1)
SAMPLE_END = dt.date(2025, 3, 31)
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

ASSETS_FILE = "assets.json.gz"
HISTORY_DIR = "history"
MANIFEST_FILE = "MANIFEST.json"

# (asset id, hour) whose priceUsd is null; never a 23:00 point, so snapshots stay consistent.
PLANTED_NULLS: tuple[tuple[str, str], ...] = (
    ("bitcoin", "2025-03-30T07:00"),
    ("solana", "2025-03-31T14:00"),
    ("ethereum", "2025-01-17T03:00"),
    ("dogecoin", "2025-02-08T19:00"),
    ("cardano", "2025-02-26T11:00"),
    ("chainlink", "2025-03-12T00:00"),
)
# (asset id, hour, text): a priceUsd that is not a number at all.
PLANTED_TEXT: tuple[tuple[str, str, str], ...] = (("xrp", "2025-03-31T05:00", "n/a"),)


@dataclass(frozen=True)
class AssetSpec:
    """What makes one synthetic asset plausible: where it starts and how it moves."""

    id: str
    symbol: str
    name: str
    price: float  # USD at the start of the walk
    supply: float  # circulating supply at the start
    supply_per_day: float  # issuance (negative: burn)
    max_supply: float | None
    daily_vol: float  # standard deviation of daily log returns
    daily_volume_usd: float
    explorer: str
    stable: bool = False


ASSETS: tuple[AssetSpec, ...] = (
    AssetSpec("bitcoin", "BTC", "Bitcoin", 94_000, 19_800_000, 450, 21_000_000,
              0.030, 35e9, "https://blockchain.info/"),
    AssetSpec("ethereum", "ETH", "Ethereum", 3_350, 120_450_000, 2_500, None,
              0.040, 20e9, "https://etherscan.io/"),
    AssetSpec("tether", "USDT", "Tether", 1.0, 137_000_000_000, 150_000_000, None,
              0.0005, 60e9, "https://www.omniexplorer.info/", stable=True),
    AssetSpec("xrp", "XRP", "XRP", 2.10, 57_600_000_000, 3_000_000, 100_000_000_000,
              0.055, 5e9, "https://xrpcharts.ripple.com/"),
    AssetSpec("binance-coin", "BNB", "BNB", 700, 144_000_000, -2_000, None,
              0.030, 1.5e9, "https://etherscan.io/token/0xB8c77482e45F1F44dE1745F52C74426C631bDD52"),
    AssetSpec("solana", "SOL", "Solana", 190, 482_000_000, 70_000, None,
              0.050, 4e9, "https://explorer.solana.com/"),
    AssetSpec("usd-coin", "USDC", "USDC", 1.0, 44_000_000_000, 40_000_000, None,
              0.0004, 6e9, "https://etherscan.io/token/0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
              stable=True),
    AssetSpec("dogecoin", "DOGE", "Dogecoin", 0.32, 147_600_000_000, 14_000_000, None,
              0.060, 2.5e9, "https://dogechain.info/"),
    AssetSpec("cardano", "ADA", "Cardano", 0.85, 35_100_000_000, 1_500_000, 45_000_000_000,
              0.055, 1e9, "https://cardanoexplorer.com/"),
    AssetSpec("tron", "TRX", "TRON", 0.25, 86_200_000_000, 1_000_000, None,
              0.035, 7e8, "https://tronscan.org/"),
    AssetSpec("chainlink", "LINK", "Chainlink", 20.5, 638_000_000, 0, 1_000_000_000,
              0.055, 8e8, "https://etherscan.io/token/0x514910771af9ca656af840dff83e8264ecf986ca"),
    AssetSpec("avalanche", "AVAX", "Avalanche", 36.0, 411_000_000, 30_000, 720_000_000,
              0.060, 6e8, "https://snowtrace.io/"),
    AssetSpec("stellar", "XLM", "Stellar", 0.43, 30_400_000_000, 1_000_000, 50_001_806_812,
              0.055, 3e8, "https://stellar.expert/explorer/public"),
    AssetSpec("toncoin", "TON", "Toncoin", 5.4, 2_550_000_000, 300_000, None,
              0.045, 3e8, "https://tonscan.org/"),
    AssetSpec("shiba-inu", "SHIB", "Shiba Inu", 0.0000215, 589_260_000_000_000, 0, None,
              0.060, 6e8, "https://etherscan.io/token/0x95ad61b0a150d79219dcf64e1e6cc01f0b64c4ce"),
    AssetSpec("polkadot", "DOT", "Polkadot", 6.7, 1_530_000_000, 300_000, None,
              0.055, 3e8, "https://polkascan.io/polkadot"),
    AssetSpec("bitcoin-cash", "BCH", "Bitcoin Cash", 430, 19_810_000, 450, 21_000_000,
              0.045, 4e8, "https://blockchair.com/bitcoin-cash"),
    AssetSpec("litecoin", "LTC", "Litecoin", 103, 75_400_000, 7_200, 84_000_000,
              0.045, 6e8, "https://live.blockcypher.com/ltc/"),
    AssetSpec("uniswap", "UNI", "Uniswap", 13.3, 600_400_000, 0, 1_000_000_000,
              0.060, 3e8, "https://etherscan.io/token/0x1f9840a85d5af5bf1d1762f925bdaddc4201f984"),
    AssetSpec("near-protocol", "NEAR", "NEAR Protocol", 5.0, 1_180_000_000, 200_000, None,
              0.060, 3e8, "https://explorer.near.org/"),
)


def num(value: float) -> str:
    """A number as the API writes it: a decimal string with about 16 significant digits."""
    if value == 0:
        return "0"
    digits = max(0, 15 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}"


def to_ms(moment: dt.datetime) -> int:
    return int(moment.replace(tzinfo=dt.UTC).timestamp() * 1000)


def iso_ms(ms: int) -> str:
    """``2025-01-01T00:00:00.000Z`` for epoch milliseconds, as the API writes ``date``."""
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def snapshot_ms(day: dt.date) -> int:
    """When the day's /assets snapshot was taken: 23:59:59Z."""
    return to_ms(dt.datetime.combine(day, dt.time(23, 59, 59)))


def sample_days() -> list[dt.date]:
    count = (SAMPLE_END - SAMPLE_START).days + 1
    return [SAMPLE_START + dt.timedelta(days=i) for i in range(count)]


@dataclass
class _Walk:
    """One asset's hidden true series: price, supply and traded volume per hour."""

    prices: list[float]
    supplies: list[float]
    volumes: list[float]


def _walk(spec: AssetSpec, hours: int, rng: random.Random) -> _Walk:
    sigma = spec.daily_vol / math.sqrt(24)
    price = spec.price
    prices, supplies, volumes = [], [], []
    for hour in range(hours):
        if spec.stable:
            # a peg: noise that is pulled back to 1.0
            price = 1.0 + 0.7 * (price - 1.0) + rng.gauss(0, sigma)
            move = abs(price - 1.0)
        else:
            step = rng.gauss(-0.5 * sigma * sigma, sigma)
            price *= math.exp(step)
            move = abs(step) / sigma
        supply = spec.supply + spec.supply_per_day * hour / 24
        if spec.max_supply is not None:
            supply = min(supply, spec.max_supply)
        volume = spec.daily_volume_usd / 24 * math.exp(rng.gauss(0, 0.35)) * (0.7 + 0.3 * move)
        prices.append(price)
        supplies.append(supply)
        volumes.append(volume)
    return _Walk(prices, supplies, volumes)


def generate(out_dir: Path = SAMPLES_DIR, seed: int = DEFAULT_SEED) -> list[Path]:
    """Write the sample files under ``out_dir`` from ``seed``; return the paths written."""
    days = sample_days()
    # One extra day before the range, so the first snapshot has a 24-hour change and volume.
    first_hour = dt.datetime.combine(SAMPLE_START - dt.timedelta(days=1), dt.time())
    lead = 24
    hours = lead + 24 * len(days)
    rng = random.Random(seed)
    walks = {spec.id: _walk(spec, hours, random.Random(rng.getrandbits(64))) for spec in ASSETS}
    hour_ms = [to_ms(first_hour) + i * HOUR_MS for i in range(hours)]

    nulls = {(asset, to_ms(dt.datetime.fromisoformat(at))) for asset, at in PLANTED_NULLS}
    texts = {
        (asset, to_ms(dt.datetime.fromisoformat(at))): text for asset, at, text in PLANTED_TEXT
    }

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / HISTORY_DIR).mkdir(exist_ok=True)
    written: list[Path] = []
    for spec in ASSETS:
        walk = walks[spec.id]
        points = []
        for i in range(lead, hours):
            ms = hour_ms[i]
            quoted: str | None = num(walk.prices[i])
            if (spec.id, ms) in nulls:
                quoted = None
            quoted = texts.get((spec.id, ms), quoted)
            points.append(
                {"priceUsd": quoted, "time": ms, "circulatingSupply": num(walk.supplies[i]),
                 "date": iso_ms(ms)}
            )
        path = out_dir / HISTORY_DIR / f"{spec.id}.json.gz"
        _write_gz(path, {"id": spec.id, "interval": "h1", "data": points})
        written.append(path)

    snapshots: dict[str, Any] = {}
    for d, day in enumerate(days):
        last = lead + 24 * d + 23  # the day's 23:00 point
        rows: list[dict[str, Any]] = []
        for spec in ASSETS:
            walk = walks[spec.id]
            window = range(last - 23, last + 1)
            traded = sum(walk.volumes[h] for h in window)
            vwap = sum(walk.prices[h] * walk.volumes[h] for h in window) / traded
            price, supply = walk.prices[last], walk.supplies[last]
            rows.append({
                "id": spec.id,
                "rank": "",
                "symbol": spec.symbol,
                "name": spec.name,
                "supply": num(supply),
                "maxSupply": num(spec.max_supply) if spec.max_supply is not None else None,
                "marketCapUsd": num(price * supply),
                "volumeUsd24Hr": num(traded),
                "priceUsd": num(price),
                "changePercent24Hr": num((price / walk.prices[last - 24] - 1) * 100),
                "vwap24Hr": num(vwap),
                "explorer": spec.explorer,
                "_cap": price * supply,
            })
        rows.sort(key=lambda row: -row["_cap"])
        for rank, row in enumerate(rows, start=1):
            row["rank"] = str(rank)
            del row["_cap"]
        snapshots[day.isoformat()] = {"data": rows, "timestamp": snapshot_ms(day)}
    path = out_dir / ASSETS_FILE
    _write_gz(path, {"snapshots": snapshots})
    written.append(path)

    manifest = {
        "synthetic": True,
        "generator": f"lab samples --seed {seed}",
        "seed": seed,
        "start": SAMPLE_START.isoformat(),
        "end": SAMPLE_END.isoformat(),
        "assets": [spec.id for spec in ASSETS],
        "planted_null_price": [{"asset_id": a, "hour": h} for a, h in PLANTED_NULLS],
        "planted_text_price": [{"asset_id": a, "hour": h, "value": v} for a, h, v in PLANTED_TEXT],
        "files": {p.relative_to(out_dir).as_posix(): _sha256(p) for p in written},
    }
    path = out_dir / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    written.append(path)
    return written


def _write_gz(path: Path, payload: object) -> None:
    raw = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    # mtime=0 and no file name in the header: the same seed gives the same bytes
    path.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_history(asset_id: str, samples_dir: Path = SAMPLES_DIR) -> list[dict[str, Any]]:
    """Every hourly point of one asset, as the API would serve it."""
    path = samples_dir / HISTORY_DIR / f"{asset_id}.json.gz"
    return list(json.loads(gzip.decompress(path.read_bytes()))["data"])


def load_snapshots(samples_dir: Path = SAMPLES_DIR) -> dict[str, dict[str, Any]]:
    """``{"2025-01-01": {"data": [...], "timestamp": ms}, ...}``: one /assets answer per day."""
    path = samples_dir / ASSETS_FILE
    return dict(json.loads(gzip.decompress(path.read_bytes()))["snapshots"])


def asset_ids(samples_dir: Path = SAMPLES_DIR) -> list[str]:
    """The ids of the assets with a history file."""
    files = (samples_dir / HISTORY_DIR).glob("*.json.gz")
    return sorted(p.name.removesuffix(".json.gz") for p in files)

