"""Model artifacts: XGBoost's own UBJSON model file plus a JSON card, no serialised Python objects.

Layout under the models directory (``TECHNIC_MODELS_DIR``, default ``<data_dir>/models``)::

    <version>/model.ubj     the booster, saved by XGBoost (``Booster.save_model``)
    <version>/card.json     what it is: features, horizon, walk-forward windows, data
                            fingerprint, library versions, metrics, calibrator, model sha256

A version directory is written under a temporary name and renamed into place, so a reader
never sees half a model. :func:`newest` returns the newest *compatible* model trained on a
given store's universe: same card format, exactly the feature list and feature version of
this code, and the store's identity on its card (a model trained on the demo universe never
scores a real one). :func:`named` loads one model the user names, whatever it was trained on.
:func:`load` refuses an incompatible one with a message saying why and what to do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.alpha.calibrate import Calibrator
from pipeline.alpha.panel import FEATURE_VERSION, FEATURES
from pipeline.errors import ModelError

if TYPE_CHECKING:  # xgboost takes ~1.5 s to import: only loading a model pays for it
    import xgboost as xgb

log = logging.getLogger(__name__)

FORMAT = "technic-alpha/1"
MODEL_FILE = "model.ubj"
CARD_FILE = "card.json"
# The out-of-sample skill a model must have shown to move a scan's ranking: a Newey–West t of
# its pooled walk-forward IC at least this, measured on the store it scores.
MIN_SKILL_T = 2.0


@dataclass
class Model:
    """A loaded model: its card, booster bytes and calibrator."""

    path: Path
    card: dict[str, Any]
    raw: bytes = field(repr=False)
    calibrator: Calibrator = field(repr=False)

    @property
    def version(self) -> str:
        return self.card["version"]

    @property
    def horizon(self) -> int:
        return int(self.card["horizon"])

    def booster(self) -> xgb.Booster:
        return booster_from_bytes(self.raw)

    def unskilled(self, identity: StoreIdentity) -> str | None:
        """Why the model must not move a scan of ``identity``'s store (None: it may): its
        card shows no out-of-sample skill there (:data:`MIN_SKILL_T`)."""
        if not identity.trained(self.card):
            where = (self.card.get("data") or {}).get("store")
            return (
                f"the model was trained on another store ({where}): its skill on this one "
                f"is unmeasured"
            )
        t = ((self.card.get("metrics") or {}).get("model") or {}).get("ic_tstat_nw")
        if t is None:
            return "the model's card has no out-of-sample IC t-statistic"
        if t < MIN_SKILL_T:
            return (
                f"the model's out-of-sample IC has a Newey–West t of {t:.2f}, under "
                f"{MIN_SKILL_T:g}: no skill shown"
            )
        return None

    def summary(self) -> dict[str, Any]:
        """What a snapshot records about the model it used."""
        pooled = self.card.get("metrics", {}).get("model", {})
        return {
            "version": self.version,
            "horizon": self.horizon,
            "created_at": self.card["created_at"],
            "trained_on": self.card["data"]["data_version"],
            "trained_on_store": self.card["data"].get("store"),
            "oos_ic_mean": pooled.get("ic_mean"),
        }


def booster_from_bytes(raw: bytes) -> xgb.Booster:
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    return booster


def save(models_dir: Path, booster: xgb.Booster, card: dict[str, Any]) -> Path:
    """Write ``booster`` and ``card`` as a new version directory; return its path."""
    models_dir = Path(models_dir).expanduser()
    models_dir.mkdir(parents=True, exist_ok=True)
    raw = bytes(booster.save_raw(raw_format="ubj"))
    card = {
        **card,
        "format": FORMAT,
        "model_file": MODEL_FILE,
        "model_sha256": hashlib.sha256(raw).hexdigest(),
    }
    final = models_dir / card["version"]
    if final.exists():
        raise ModelError(f"model version {card['version']} already exists in {models_dir}")
    tmp = models_dir / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        (tmp / MODEL_FILE).write_bytes(raw)
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2, allow_nan=False) + "\n")
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_card(path: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(path) / CARD_FILE).read_text())
    except FileNotFoundError:
        raise ModelError(f"no model card {Path(path) / CARD_FILE}") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"corrupt model card {Path(path) / CARD_FILE}: {exc}") from None


def check(card: dict[str, Any], where: Path) -> None:
    """Raise :class:`ModelError` unless the card matches this code's format and features."""
    if card.get("format") != FORMAT:
        raise ModelError(
            f"model {where} has card format {card.get('format')!r}, this build reads {FORMAT!r}; "
            "retrain with 'technic train'"
        )
    features = card.get("features")
    if features != list(FEATURES) or card.get("feature_version") != FEATURE_VERSION:
        theirs = set(features or [])
        missing = [f for f in FEATURES if f not in theirs]
        extra = [f for f in features or [] if f not in set(FEATURES)]
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
        if extra:
            detail.append(f"unknown {', '.join(extra[:5])}{' …' if len(extra) > 5 else ''}")
        if not detail:
            detail.append("same names, different order or definitions")
        raise ModelError(
            f"model {where} was built for other features than this code "
            f"(feature version {card.get('feature_version')!r}, this code "
            f"{FEATURE_VERSION!r}: {'; '.join(detail)}); retrain with 'technic train'"
        )


def load(path: str | os.PathLike[str]) -> Model:
    """Load and check one model directory; an incompatible or damaged one raises
    :class:`ModelError` saying why."""
    path = Path(path).expanduser()
    card = read_card(path)
    check(card, path)
    try:
        raw = (path / card.get("model_file", MODEL_FILE)).read_bytes()
    except FileNotFoundError:
        raise ModelError(f"model file missing in {path}") from None
    if hashlib.sha256(raw).hexdigest() != card.get("model_sha256"):
        raise ModelError(f"model file in {path} does not match its card's sha256")
    return Model(path, card, raw, Calibrator.from_dict(card["calibration"]["calibrator"]))


@dataclass(frozen=True)
class StoreIdentity:
    """Which universe a scan runs on: the store's identity (its manifest's ``store_id``) and
    path (what older cards and stores without an identity are matched by)."""

    store_id: str | None
    path: str

    def trained(self, card: dict[str, Any]) -> bool:
        """Whether ``card`` says its model was trained on this store."""
        data = card.get("data") or {}
        if self.store_id is not None and data.get("store_id") is not None:
            return data["store_id"] == self.store_id
        trained_on = data.get("store")
        return trained_on is not None and _same_store(trained_on, self.path)


def _same_store(a: str, b: str) -> bool:
    from pipeline.storage import Location

    one, other = Location.parse(a), Location.parse(b)
    if one.local and other.local:
        return Path(one.url).resolve() == Path(other.url).resolve()
    return one == other


def newest(
    models_dir: str | os.PathLike[str], store: StoreIdentity | None = None
) -> tuple[Model | None, str]:
    """The newest compatible model in ``models_dir`` (trained on ``store`` when given) and,
    when there is none, why."""
    models_dir = Path(models_dir).expanduser()
    if not models_dir.is_dir():
        return None, f"no trained model in {models_dir} (run 'technic train')"
    cards = []
    for sub in models_dir.iterdir():
        if sub.is_dir() and not sub.name.startswith(".") and (sub / CARD_FILE).is_file():
            try:
                cards.append((read_card(sub), sub))
            except ModelError as exc:
                log.warning("skipping model: %s", exc)
    if not cards:
        return None, f"no trained model in {models_dir} (run 'technic train')"
    cards.sort(key=lambda c: (str(c[0].get("created_at", "")), c[1].name), reverse=True)
    if store is not None:
        ours = [(card, sub) for card, sub in cards if store.trained(card)]
        if not ours:
            other = cards[0][0].get("data", {}).get("store", "another store")
            return None, (
                f"no model in {models_dir} was trained on this store's universe ({store.path}; "
                f"the newest, {cards[0][1].name}, was trained on {other}): train one with "
                f"'technic train --store {store.path}' or name one with TECHNIC_ALPHA_MODEL"
            )
        cards = ours
    refused = []
    for _, sub in cards:
        try:
            return load(sub), ""
        except ModelError as exc:
            refused.append(str(exc))
    log.warning("no compatible model: %s", refused[0])
    return None, f"no compatible model in {models_dir}: {refused[0]}"


def named(name: str, models_dir: str | os.PathLike[str]) -> Model:
    """The model ``name`` names: a version directory in ``models_dir`` or a model
    directory's path. Raises :class:`ModelError` when it is missing or incompatible."""
    candidates = [Path(models_dir).expanduser() / name, Path(name).expanduser()]
    for path in candidates:
        if (path / CARD_FILE).is_file():
            return load(path)
    raise ModelError(
        f"TECHNIC_ALPHA_MODEL={name!r} names no model: neither a version in {models_dir} nor "
        "a model directory (see 'technic train')"
    )
