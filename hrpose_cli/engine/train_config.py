"""What defines a training run and where it lives: TrainConfig (checked, to and from config.json), config files,
and the run folder (numbered fresh, the latest for a bare --resume, a used one refused unless --exist-ok)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hrpose_cli.data.augment import RECIPES
from hrpose_cli.errors import HrposeError

RUNS_ROOT = Path("runs") / "train"
BASE_SIGMA = 2.0  # at an input height of 256; scaled with the height (3 at 384x288)
TEACHER_MODES = ("fill", "match")  # fill: unlabelled joints only; match: function matching (distill.py)
# Options that only say how to run, not what is learnt: --resume may change them.
RUNTIME_FIELDS = ("device", "workers", "log_every", "compile", "cuda_graphs", "skip_bad_images", "val_batch", "time_limit",
                  "save_every", "exist_ok")


def is_movenet(teacher: str | Path) -> bool:
    """MoveNet comes as its TensorFlow.js graph (movenet-thunder.json); any other teacher is an HRNet checkpoint."""
    return Path(teacher).suffix.lower() == ".json"


@dataclass
class TrainConfig:
    """Everything that defines a training run; config.json in the run folder holds the resolved one.

    ``arch``/``input_size`` None mean: those of ``weights`` when given, else w32 at 256x192. ``model`` (an
    HRNetConfig dict) names a network outside the named archs and wins over ``arch``. ``joint_weights`` None
    follows the recipe (official: off, else on), a list gives one weight per keypoint. The keypoint set is the
    training files'; ``sigmas``, ``flip_pairs`` ('a:b,...') and ``upper_body`` ('a,b,...') override its parts. ``ema`` > 0 validates and saves a moving average of the
    weights. ``batch`` is per process; ``sigma`` None is 2 x height/256.
    """

    train_ann: list[str] = field(default_factory=list)
    train_images: list[str] = field(default_factory=list)
    val_ann: str | None = None
    val_images: str | None = None
    arch: str | None = None
    model: dict | None = None
    input_size: tuple[int, int] | None = None
    recipe: str = "seed"
    augment: bool = True
    joint_weights: bool | list[float] | None = None
    sigmas: list[float] | None = None
    flip_pairs: str | None = None
    upper_body: str | None = None
    epochs: int = 210
    lr_steps: list[int] | None = None  # None: the official 170/210 and 200/210 of epochs; []: a constant lr
    batch: int = 32
    lr: float = 1e-3
    warmup_epochs: float = 0.0
    sigma: float | None = None
    seed: int = 0
    device: str = "auto"
    workers: int | None = None
    val_every: int = 1
    val_batch: int | None = None
    compile: bool = False
    cuda_graphs: bool = True  # on CUDA, each step replayed as one recorded graph (engine/train_step.py)
    sync_bn: bool = False
    skip_bad_images: bool = False
    log_every: int = 50
    save_every: int = 1
    out: str | None = None
    name: str = "exp"
    weights: str | None = None
    resume: bool = False
    exist_ok: bool = False
    demo: bool = False
    teacher: str | None = None
    teacher_min_score: float = 0.3
    distill_features: float = 0.0
    teacher_mode: str = "fill"
    teacher_flip: bool = False
    gt_weight: float = 1.0
    unlabelled_ann: list[str] = field(default_factory=list)
    unlabelled_images: list[str] = field(default_factory=list)
    mixup: float = 0.0
    ema: float = 0.0
    time_limit: float | None = None

    def __post_init__(self) -> None:
        self.train_ann = [str(p) for p in self.train_ann]
        self.train_images = [str(p) for p in self.train_images]
        self.unlabelled_ann = [str(p) for p in self.unlabelled_ann]
        self.unlabelled_images = [str(p) for p in self.unlabelled_images]
        if self.input_size is not None:
            self.input_size = tuple(int(v) for v in self.input_size)
        if isinstance(self.joint_weights, tuple):
            self.joint_weights = list(self.joint_weights)
        if self.sigmas is not None:
            self.sigmas = [float(s) for s in self.sigmas]
        if isinstance(self.lr_steps, tuple):
            self.lr_steps = list(self.lr_steps)

    # -- checks and derived values ------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        """Raise HrposeError (one line, naming the option) for values that cannot work."""

        def bad(option: str, value: object, why: str) -> None:
            err = HrposeError(f"{option} {value}: {why}")
            err.option = option  # so that a value read from --config can be reported with the file's name
            raise err

        if len(self.train_ann) != len(self.train_images):
            raise HrposeError(
                f"--train-ann given {len(self.train_ann)} time(s) but --train-images {len(self.train_images)}: "
                "they pair up in order, one image folder per annotation file"
            )
        if not self.train_ann and not self.resume:
            raise HrposeError("no training data: give --train-ann A.json --train-images DIR")
        if (self.val_ann is None) != (self.val_images is None):
            raise HrposeError("--val-ann and --val-images go together: give both or neither")
        if self.recipe not in RECIPES:
            bad("--recipe", self.recipe, f"expected one of {', '.join(RECIPES)}")
        for option, value in (("--epochs", self.epochs), ("--batch", self.batch), ("--val-every", self.val_every),
                              ("--log-every", self.log_every), ("--save-every", self.save_every)):
            if not isinstance(value, int) or value < 1:
                bad(option, value, "must be a whole number of at least 1")
        if self.val_batch is not None and self.val_batch < 1:
            bad("--val-batch", self.val_batch, "must be at least 1")
        if self.workers is not None and self.workers < 0:
            bad("--workers", self.workers, "must be 0 or more")
        if not (math.isfinite(self.lr) and self.lr > 0):
            bad("--lr", self.lr, "must be a positive number")
        if self.lr_steps is not None:
            steps = self.lr_steps
            shown = ",".join(map(str, steps)) if isinstance(steps, list) else steps
            if not isinstance(steps, list) or not all(type(v) is int and v >= 1 for v in steps) \
                    or sorted(set(steps)) != steps:
                bad("--lr-steps", shown, "must be increasing whole numbers of epochs, at least 1")
            if steps and self.time_limit is not None:
                bad("--lr-steps", shown,
                    "fixed epochs cannot follow --time-limit, which refits the schedule (leave it out, or give none)")
        if not (math.isfinite(self.warmup_epochs) and self.warmup_epochs >= 0):
            bad("--warmup-epochs", self.warmup_epochs, "must be 0 or more")
        if self.sigma is not None and not (math.isfinite(self.sigma) and self.sigma > 0):
            bad("--sigma", self.sigma, "must be a positive number")
        if not (math.isfinite(self.teacher_min_score) and 0 <= self.teacher_min_score <= 1):
            bad("--teacher-min-score", self.teacher_min_score, "must be between 0 and 1")
        if not (math.isfinite(self.distill_features) and self.distill_features >= 0):
            bad("--distill-features", self.distill_features, "must be 0 or more")
        if self.distill_features > 0 and not self.teacher:
            bad("--distill-features", self.distill_features, "needs --teacher")
        if self.teacher and not Path(self.teacher).is_file():
            bad("--teacher", self.teacher, "is a folder; give its movenet-thunder.json or a model file" if Path(self.teacher).is_dir() else "file not found")
        if self.teacher and not is_movenet(self.teacher) and self.teacher_mode != "match":
            bad("--teacher", self.teacher, "an HRNet teacher teaches by function matching: add --teacher-mode match")
        if self.teacher_mode not in TEACHER_MODES:
            bad("--teacher-mode", self.teacher_mode, f"expected one of {', '.join(TEACHER_MODES)}")
        if self.teacher_flip and not self.teacher:
            bad("--teacher-flip", self.teacher_flip, "needs --teacher")
        if self.teacher_mode == "match" and not self.teacher:
            bad("--teacher-mode", self.teacher_mode, "needs --teacher")
        if not (math.isfinite(self.gt_weight) and 0 <= self.gt_weight <= 1):
            bad("--gt-weight", self.gt_weight, "must be between 0 and 1")
        if self.gt_weight != 1.0 and self.teacher_mode != "match":
            bad("--gt-weight", self.gt_weight, "needs --teacher-mode match")
        if not (math.isfinite(self.mixup) and 0 <= self.mixup <= 1):
            bad("--mixup", self.mixup, "must be a probability between 0 and 1")
        if self.mixup > 0 and self.teacher_mode != "match":
            bad("--mixup", self.mixup, "needs --teacher-mode match (the teacher labels the mixed crops)")
        if len(self.unlabelled_ann) != len(self.unlabelled_images):
            raise HrposeError(
                f"--unlabelled-ann given {len(self.unlabelled_ann)} time(s) but --unlabelled-images "
                f"{len(self.unlabelled_images)}: they pair up in order, one image folder per annotation file"
            )
        if self.unlabelled_ann and self.teacher_mode != "match":
            bad("--unlabelled-ann", self.unlabelled_ann[0], "needs --teacher-mode match (only the teacher labels its persons)")
        if self.distill_features > 0 and self.teacher_mode == "match":
            bad("--distill-features", self.distill_features, "works with --teacher-mode fill only")
        if not (math.isfinite(self.ema) and 0 <= self.ema < 1):
            bad("--ema", self.ema, "must be at least 0 (off) and below 1, such as 0.999")
        if self.time_limit is not None and not (math.isfinite(self.time_limit) and self.time_limit > 0):
            bad("--time-limit", self.time_limit, "must be a positive number of minutes")
        if self.input_size is not None:
            h, w = self.input_size
            if h <= 0 or w <= 0 or h % 32 or w % 32:
                bad("--input-size", f"{h}x{w}", "height and width must be positive multiples of 32 (HRNet's four levels)")
        return self

    @property
    def use_joint_weights(self) -> bool:
        return self.recipe != "official" if self.joint_weights is None else self.joint_weights is not False

    def sigma_for(self, input_height: int) -> float:
        return self.sigma if self.sigma is not None else BASE_SIGMA * input_height / 256

    # -- files --------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size) if self.input_size else None
        return d

    def to_run_dict(self, run_dir: Path) -> dict[str, Any]:
        """to_dict() with every file and folder absolute, as config.json keeps it (a resume may start elsewhere)."""
        data = self.to_dict()
        for key in ("train_ann", "train_images", "unlabelled_ann", "unlabelled_images"):
            data[key] = [str(Path(p).resolve()) for p in data[key]]
        for key in ("val_ann", "val_images", "weights", "teacher"):
            if data[key]:
                data[key] = str(Path(data[key]).resolve())
        data["out"] = str(run_dir.resolve())
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "TrainConfig":
        """From config.json (meta keys ignored) or a hand-written JSON config; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k != "run"}
        unknown = sorted(set(data) - names)
        if unknown:
            raise HrposeError(f"{source}: unknown training option(s) {', '.join(unknown)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise HrposeError(f"{source}: bad training configuration ({err})") from None


def read_config_file(path: Path) -> dict[str, Any]:
    """A JSON file of TrainConfig fields (configs/*.json, or a run's config.json), checked."""
    path = Path(path)
    if not path.is_file():
        raise HrposeError(f"{path}: config file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HrposeError(f"{path}: not a readable JSON config ({err})") from None
    if not isinstance(data, dict):
        raise HrposeError(f"{path}: a training config must be a JSON object of option names and values")
    TrainConfig.from_dict(data, str(path))  # fail early on unknown keys
    return {k: v for k, v in data.items() if k != "run"}


def next_run_dir(root: Path, name: str) -> Path:
    """root/name, or root/name2, name3, ... : the first that does not exist yet (as ultralytics names runs)."""
    candidate = root / name
    n = 2
    while candidate.exists():
        candidate = root / f"{name}{n}"
        n += 1
    return candidate


def latest_run(root: Path = RUNS_ROOT) -> Path:
    """The run folder under root whose last.pt was written last (what a bare --resume continues)."""
    runs = sorted(root.glob("*/last.pt"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise HrposeError(f"--resume: no run with a last.pt under {root}; name the run with --out RUN_DIR")
    return runs[-1].parent


def resolve_run_dir(config: TrainConfig) -> Path:
    """The run folder: --out, else runs/train/<name> numbered fresh; with --resume: --out or the latest run.

    A run stopped before its first checkpoint resumes from the start with its config.json; ``exist_ok`` starts
    a used --out folder over (as ultralytics' exist_ok)."""
    if config.resume:
        run_dir = Path(config.out) if config.out else latest_run()
        if not (run_dir / "config.json").is_file():
            what = "no checkpoint to resume from" if not (run_dir / "last.pt").is_file() else "missing"
            raise HrposeError(f"{run_dir / 'config.json'}: {what}; cannot resume without the run's configuration")
        return run_dir
    if config.out:
        run_dir = Path(config.out)
        if not config.exist_ok and ((run_dir / "last.pt").exists() or (run_dir / "config.json").exists()):
            raise HrposeError(f"{run_dir}: already holds a training run; add --resume to continue it, --exist-ok to "
                              "start it over, or choose another --out")
        return run_dir
    return next_run_dir(RUNS_ROOT, config.name)


def load_run_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    return TrainConfig.from_dict(read_config_file(path), str(path))
