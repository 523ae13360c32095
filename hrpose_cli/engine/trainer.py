"""Training: the loop, checkpoints, resume, validation and the metrics log (the run's configuration is in
train_config, the network's set-up in train_model, each step's inputs and targets in train_batch, the
recorded step in train_step, what it reports in train_report, the generators' states in train_state, the
loss, schedule and weight average in optim, torchrun's process group in distributed).

The data path is the point: worker processes only decode JPEGs (data.images.batch_loader over the
deterministic plan of data.train_data, one DataLoader for the whole run); the augmentation parameters of
each global batch are drawn on the host from a generator seeded by (seed, epoch, step); the crops
(geometry.warp_crops + normalize) and the targets (codec.encode) are made on the device for the whole batch.
The step loop never waits on the device: the loss is accumulated there and read only every ``log_every``
steps and at the end of an epoch.

Public API: TrainReporter, TrainResult and run(config, reporter).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from hrpose_cli import __version__
from hrpose_cli.data.images import batch_loader, default_workers
from hrpose_cli.data.train_data import TrainPlan
from hrpose_cli.engine import distributed
from hrpose_cli.engine.compiling import compile_regions
from hrpose_cli.engine.optim import WeightAverage, joints_mse_loss, lr_factor, milestones
from hrpose_cli.engine.stage_clock import StageClock, merge
from hrpose_cli.engine.train_batch import StepBatches
from hrpose_cli.engine.train_config import RUNTIME_FIELDS, TrainConfig, load_run_config, resolve_run_dir
from hrpose_cli.engine.train_model import build_model, load_run_data
from hrpose_cli.engine.train_report import TrainReporter, TrainResult, write_history
from hrpose_cli.engine.train_state import all_finite, rng_states, set_rng_states
from hrpose_cli.engine.train_step import GraphedTrainStep, plain_optimizer_state
from hrpose_cli.errors import HrposeError
from hrpose_cli.files import write_json
from hrpose_cli.model.hrnet import ARCHS

STAT_KEYS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


# ---------------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------------


def fitted_epochs(epoch: int, ends: list[float], limit_s: float, current: int, most: int) -> int:
    """The run's total epochs under --time-limit after ``epoch``, from the seconds at which this process's
    epochs ended (``ends``, validation included): as many as the time left holds at the mean epoch time so
    far, at most ``most`` (--epochs) and at least ``epoch``.

    The first epoch of a process carries its start-up, so it alone is no estimate: it changes ``current``
    only when it has used half the limit. Otherwise a run resumed near its end would shrink its schedule for
    one epoch (the lr past both drops) and grow it back after the next.
    """
    if len(ends) == 1 and ends[0] < limit_s / 2:
        return current
    per_epoch = (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else ends[0]
    fit = epoch + int(max(limit_s - ends[-1], 0.0) // max(per_epoch, 1e-9))
    return max(epoch, min(most, fit))


class _Trainer:
    def __init__(self, config: TrainConfig, reporter: TrainReporter | None):
        self.requested = config
        self.reporter_given = reporter or TrainReporter()

    # -- set-up -------------------------------------------------------------------------------------
    def setup(self) -> None:
        self.dist, self.runtime = distributed.setup(self.requested)
        self.clock = StageClock(self.runtime.device)  # per epoch: metrics.jsonl's stage_seconds
        self.reporter = self.reporter_given if self.dist.main else TrainReporter()
        device = self.runtime.device
        if self.requested.sync_bn and self.dist.enabled and device.type != "cuda":
            raise HrposeError("--sync-bn needs CUDA: SyncBatchNorm does not run on the CPU")

        if not self.requested.resume:
            self.requested.validate()  # bad options fail before anything is written
        run_dir = resolve_run_dir(self.requested) if self.dist.main else None
        self.run_dir = distributed.broadcast_path(self.dist, run_dir)
        checkpoint = None
        if self.requested.resume:
            config = load_run_config(self.run_dir)
            for name in RUNTIME_FIELDS:
                setattr(config, name, getattr(self.requested, name))
            config.resume, config.out = True, str(self.run_dir)
            from hrpose_cli.model.checkpoints import read_checkpoint

            if not (self.run_dir / "last.pt").is_file():  # stopped before its first epoch ended: start it again
                self.reporter.message(f"{self.run_dir} has no last.pt yet: starting it from epoch 1 with its config.json")
            else:
                checkpoint = read_checkpoint(self.run_dir / "last.pt")
            if checkpoint is not None and not isinstance(checkpoint.get("train_state"), dict):
                raise HrposeError(f"{self.run_dir / 'last.pt'}: no training state in it (not written by hrpose train)")
        else:
            config = dataclasses.replace(self.requested)
        self.config = config.validate()

        # Data (every rank reads the annotations; only images are per rank).
        self.table, self.schema, self.skipped, self.val = load_run_data(config)

        # Model.
        self.raw_model, self.model_config = build_model(config, checkpoint, self.schema, self.reporter.message)
        config.model = self.model_config.to_dict()
        config.arch = self.model_config.arch if self.model_config.arch in ARCHS else None
        config.input_size = tuple(self.model_config.input_size)
        if self.model_config.num_joints != self.schema.num_joints:
            raise HrposeError(f"{self.run_dir / 'last.pt'}: the network predicts {self.model_config.num_joints} keypoints, "
                              f"the training set has {self.schema.num_joints}")

        self.raw_model.to(device)
        self.ema = None
        if config.ema > 0:
            self.ema = WeightAverage(self.raw_model, config.ema)  # on resume: the saved average
            if checkpoint is not None:
                state = checkpoint["train_state"]
                if "raw_weights" not in state:
                    raise HrposeError(f"{self.run_dir / 'last.pt'}: no raw weights beside the average; cannot resume --ema")
                self.raw_model.load_state_dict(state["raw_weights"])
                self.ema.updates = int(state.get("ema_updates", 0))
            if self.runtime.channels_last:
                self.ema.model.to(memory_format=torch.channels_last)
        self.distiller = None
        model: nn.Module = self.raw_model
        if config.teacher:
            from hrpose_cli.engine.distill import StudentWithAdapter, load_teacher

            self.distiller = load_teacher(config.teacher, device, self.model_config, config.teacher_min_score,
                                          config.distill_features, config.teacher_flip, self.runtime.channels_last)
            if self.distiller.adapter is not None:
                if checkpoint is not None and "adapter" in checkpoint["train_state"]:
                    self.distiller.adapter.load_state_dict(checkpoint["train_state"]["adapter"])
                model = StudentWithAdapter(self.raw_model, self.distiller.adapter)
        if self.runtime.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.train()
        if self.dist.enabled:
            if config.sync_bn:
                # Swaps the BatchNorm children in place, so raw_model (maybe inside the adapter wrapper) has them too.
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None, gradient_as_bucket_view=True
            )
        if config.compile:  # in place, by regions: the wrappers above and validation run the compiled blocks
            compile_regions(self.raw_model)
        self.model = model

        fused = {"fused": True} if device.type == "cuda" else {}
        parameters = list(self.raw_model.parameters())
        if self.distiller is not None and self.distiller.adapter is not None:
            parameters += list(self.distiller.adapter.parameters())
        # The whole step as one CUDA graph where it can be (train_step.py): not under DDP (its gradient
        # all-reduce runs outside the autograd graph) nor with --distill-features (a second loss on a wrapper).
        graphs = (config.cuda_graphs and self.runtime.cuda_graphs and device.type == "cuda" and not self.dist.enabled
                  and model is self.raw_model)
        self.optimizer = torch.optim.Adam(parameters, lr=config.lr, weight_decay=0.0, capturable=graphs, **fused)

        # Plan and loader.
        self.first_epoch = 1
        self.history: list[dict[str, Any]] = []
        self.best_ap: float | None = None
        self.best_epoch: int | None = None
        if checkpoint is not None:
            state = checkpoint["train_state"]
            self.optimizer.load_state_dict(state["optimizer"])
            self.first_epoch = int(state["epoch"]) + 1
            self.history = list(state.get("history", []))
            self.best_ap = state.get("best_ap")
            self.best_epoch = state.get("best_epoch")
            self.skipped = list(state.get("skipped_images", [])) + [s for s in self.skipped if s not in state.get("skipped_images", [])]
            if self.first_epoch > config.epochs:
                raise HrposeError(f"{self.run_dir}: this run already finished its {config.epochs} epochs; nothing to resume")
            set_rng_states(state["rng"], device)
        self.graphed_step = GraphedTrainStep(self.model, self.optimizer, self._loss, device) if graphs else None
        self.plan = TrainPlan(self.table, config.batch, config.epochs, config.seed, self.first_epoch,
                              self.dist.rank, self.dist.world)
        self.batches = StepBatches(config, self.table, self.plan, self.schema, self.model_config, self.runtime,
                                   self.dist, self.clock, self.distiller, self.skipped)
        self.predictor = None

        if self.dist.main and checkpoint is None:
            self._write_config()
        distributed.barrier(self.dist, self.runtime)

    def _write_config(self) -> None:
        data = self.config.to_run_dict(self.run_dir)
        data["run"] = {
            "hrpose": __version__,
            "torch": torch.__version__,
            "command": " ".join(sys.argv),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "world_size": self.dist.world,
            "global_batch": self.plan.global_batch,
            "device": str(self.runtime.device),
            "bf16_autocast": self.runtime.amp,
            "channels_last": self.runtime.channels_last,
            "train_persons": len(self.table),
            "train_images": self.table.num_images,
            "sources": [{"ann": a, "persons": n} for a, n in self.table.sources],
            "sigma": self.batches.sigma,
            "joint_weights": self.config.use_joint_weights,
            "keypoints": self.schema.to_dict(),
            "lr_milestones": list(self.lr_drops),
        }
        write_json(self.run_dir / "config.json", data)

    # -- one step (its inputs and targets: train_batch.StepBatches) ---------------------------------
    def _loss(self, inputs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Forward and heatmap loss: what a recorded training step replays (train_step.py)."""
        with self.runtime.autocast(cache=False):  # a graph capture needs the weights' casts inside it
            out = self.model(inputs)
        return joints_mse_loss(out.float(), target, weight)

    def _eager_step(self, inputs, target, weight, features) -> torch.Tensor:
        with self.runtime.autocast():
            out = self.model(inputs)
        out, adapted = out if isinstance(out, tuple) else (out, None)
        loss = joints_mse_loss(out.float(), target, weight)
        if adapted is not None:
            loss = loss + self.distiller.feature_loss(adapted, *features)
        self.clock.lap("forward")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.clock.lap("backward")
        self.optimizer.step()
        self.clock.lap("optimizer")
        return loss.detach()

    # -- reading the loss (the only host-device syncs of an epoch) ----------------------------------
    def _read(self, loss_sum: torch.Tensor, bad_step: torch.Tensor, steps: int, epoch: int) -> float:
        values = torch.stack([loss_sum, bad_step])
        if self.dist.enabled:
            total = values[:1].clone()
            first = values[1:].clone()
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
            dist.all_reduce(first, op=dist.ReduceOp.MIN)
            values = torch.cat([total / self.dist.world, first])
        total, first = values.tolist()
        if math.isfinite(first) or not math.isfinite(total):
            step = int(first) + 1 if math.isfinite(first) else steps
            raise HrposeError(self._nan_message(epoch, step, "NaN" if math.isnan(total) else "infinite"))
        return total / max(steps, 1)

    def _nan_message(self, epoch: int, step: int | str, what: str = "NaN") -> str:
        last = self.run_dir / "last.pt"
        where = f"last good checkpoint: {last}" if last.is_file() else "no checkpoint was written yet"
        return f"loss became {what} at epoch {epoch} step {step}; {where}"

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        config = self.config
        device = self.runtime.device
        spe = self.plan.steps_per_epoch
        self.reporter.start(self._start_info())
        loader = batch_loader(self.plan, self._workers(), pin_memory=device.type == "cuda")
        iterator = iter(loader)
        k = 0
        run_start = time.perf_counter()
        self.epoch_ends: list[float] = []
        self.max_epochs = config.epochs  # the loader's plan covers this many; --time-limit may only shorten
        epoch = self.first_epoch
        try:
            while epoch <= config.epochs:
                self.model.train()
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                self.reporter.epoch_start(epoch, config.epochs, spe)
                drops = self.lr_drops  # --time-limit may have refitted the epochs
                loss_sum = torch.zeros((), device=device)
                bad_step = torch.full((), math.inf, device=device)
                running: float | None = None
                wait = 0.0
                start = time.perf_counter()
                for step in range(spe):
                    t0 = time.perf_counter()
                    batch = next(iterator)
                    waited = time.perf_counter() - t0
                    wait += waited
                    self.clock.add("data_wait", waited)
                    self.clock.mark()
                    upload = self.batches.upload(k, batch)
                    self.clock.lap("upload")
                    assert (upload.epoch, upload.step) == (epoch, step)
                    k += 1
                    lr = config.lr * lr_factor(epoch, step, spe, drops, config.warmup_epochs)
                    inputs, target, weight, features = self.batches.inputs_targets(upload)
                    if self.graphed_step is not None:
                        self.graphed_step.set_lr(lr)
                        detached = self.graphed_step(inputs, target, weight)
                        self.clock.lap("network_step")
                    else:
                        for group in self.optimizer.param_groups:
                            group["lr"] = lr
                        detached = self._eager_step(inputs, target, weight, features)
                    if self.ema is not None:
                        self.ema.update(self.raw_model)
                        self.clock.lap("weight_average")
                    loss_sum += detached
                    bad_step = torch.minimum(bad_step, torch.where(torch.isfinite(detached), math.inf, float(step)))
                    read = (step + 1) % config.log_every == 0 and step + 1 < spe
                    if read:
                        running = self._read(loss_sum, bad_step, step + 1, epoch)
                    elapsed = time.perf_counter() - start
                    self.reporter.step(step + 1, running if read else None, lr,
                                       (step + 1) * self.plan.global_batch / elapsed if elapsed > 0 else 0.0)
                mean_loss = self._read(loss_sum, bad_step, spe, epoch)  # waits for the device: the epoch's end
                self.runtime.synchronize()
                train_time = time.perf_counter() - start
                metrics = {
                    "epoch": epoch,
                    "loss": mean_loss,
                    "lr": lr,
                    "images_per_s": self.plan.persons_per_epoch / train_time if train_time > 0 else 0.0,
                    "data_wait_fraction": wait / train_time if train_time > 0 else 0.0,
                    "gpu_mem_gib": self.runtime.peak_memory_gib(),
                    "time_s": train_time,
                }
                stages = self.clock.seconds()
                if self.val is not None and (epoch % config.val_every == 0 or epoch == config.epochs):
                    if self.dist.main:
                        t0 = time.perf_counter()
                        metrics.update(self._validate(epoch))
                        metrics["val_time_s"] = time.perf_counter() - t0
                        stages["validation"] = metrics["val_time_s"]
                    distributed.barrier(self.dist, self.runtime)
                metrics["stage_seconds"] = merge(stages)
                if self.skipped:
                    metrics["skipped_images"] = len(self.skipped)
                self._fit_time_limit(epoch, time.perf_counter() - run_start)
                if self.dist.main:
                    self._end_epoch(epoch, metrics)
                self.reporter.epoch_end(metrics)
                epoch += 1
        finally:
            del iterator
            self.reporter.close()
        return TrainResult(self.run_dir, config.epochs, self.history, self.best_ap, self.best_epoch, self.dist.world,
                           self.plan.global_batch, list(self.skipped), self.saved_model)

    @property
    def saved_model(self) -> nn.Module:
        """The network a run validates and saves: the weight average under --ema, else the trained weights."""
        return self.ema.model if self.ema is not None else self.raw_model

    def _fit_time_limit(self, epoch: int, elapsed_s: float) -> None:
        """With --time-limit, fit the run (at most --epochs) to the time left, lr schedule included
        (``fitted_epochs``). The new total is rank 0's, and is written to config.json so that --resume keeps
        the schedule."""
        if self.config.time_limit is None:
            return
        self.epoch_ends.append(elapsed_s)
        proposed = fitted_epochs(epoch, self.epoch_ends, self.config.time_limit * 60, self.config.epochs,
                                 self.max_epochs)
        total = torch.tensor(proposed, device=self.runtime.device)
        if self.dist.enabled:
            dist.broadcast(total, 0)
        total = int(total)
        if total != self.config.epochs:
            self.config.epochs = total
            if self.dist.main:
                data = json.loads((self.run_dir / "config.json").read_text())
                data["epochs"] = total
                data["run"]["lr_milestones"] = list(self.lr_drops)
                write_json(self.run_dir / "config.json", data)

    @property
    def lr_drops(self) -> tuple[int, ...]:
        """Finished-epoch counts after which the lr drops x0.1, for the epochs as they stand now."""
        return milestones(self.config.epochs, self.config.lr_steps)

    def _workers(self) -> int:
        if self.config.workers is not None:
            return self.config.workers
        return max(0, min(16, ((os.cpu_count() or 1) - 1) // max(1, self.dist.local_world))) if self.dist.enabled else default_workers()

    def _start_info(self) -> dict[str, Any]:
        return {
            "run_dir": self.run_dir,
            "first_epoch": self.first_epoch,
            "epochs": self.config.epochs,
            "resumed": self.first_epoch > 1,
            "demo": self.config.demo,
            "arch": self.model_config.arch,
            "input_size": self.model_config.input_size,
            "device": str(self.runtime.device),
            "world_size": self.dist.world,
            "batch": self.config.batch,
            "global_batch": self.plan.global_batch,
            "train_persons": len(self.table),
            "train_images": self.table.num_images,
            "val_persons": len(self.val[1]) if self.val else 0,
            "steps_per_epoch": self.plan.steps_per_epoch,
            "recipe": self.config.recipe,
            "joint_weights": self.config.use_joint_weights,
            "keypoints": self.schema.describe(),
            "sigma_warning": self.schema.uniform_sigma_warning() if self.val else None,
            "bf16": self.runtime.amp,
            "compile": self.config.compile,
            "cuda_graphs": self.graphed_step is not None,
            "skipped_images": list(self.skipped),
        }

    def _validate(self, epoch: int) -> dict[str, float]:
        """COCO AP with GT boxes and flip test, through the same pipeline as `hrpose eval`.

        The Predictor is built once around the unwrapped network (not the DDP wrapper), with a runtime that
        does not compile again (under --compile the blocks are compiled in place already): building it moves
        nothing and wraps nothing, and it shares the training weights (or their average, under --ema). The
        network is put back in train mode afterwards.
        """
        from hrpose_cli.engine.model_eval import evaluate_predictor
        from hrpose_cli.engine.predictor import Predictor

        dataset, records = self.val
        self.reporter.validation_start(epoch, len(records))
        batch = self.config.val_batch or self.config.batch
        if self.predictor is None:
            # Padded to one shape on CUDA, as `hrpose eval`: compiled blocks compile once, the CUDA graph
            # (which reads the weights where training updates them) is recorded once.
            runtime = dataclasses.replace(self.runtime, compile=False)
            pad = batch if runtime.device.type == "cuda" else None
            self.predictor = Predictor(self.saved_model, self.model_config, runtime, flip=True, pad_batches_to=pad,
                                       schema=self.schema)
        self.saved_model.eval()
        try:
            outcome = evaluate_predictor(self.predictor, dataset, records, batch,
                                         self._workers(), skip_bad_images=self.config.skip_bad_images)
        finally:
            self.raw_model.train()
        return {key: float(outcome.stats[key]) for key in STAT_KEYS if key in outcome.stats}

    def _end_epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        """Log the epoch; write best.pt when AP improved, and last.pt every --save-every epochs and after the last."""
        from hrpose_cli.model.checkpoints import save_checkpoint

        if not all_finite(self.saved_model):
            raise HrposeError(self._nan_message(epoch, "end", "NaN") + " (the weights are no longer finite)")
        self.history.append(metrics)
        ap = metrics.get("AP")
        improved = ap is not None and (self.best_ap is None or ap > self.best_ap)
        if improved:
            self.best_ap, self.best_epoch = ap, epoch
        meta = {"epoch": epoch, "AP": ap, "run": str(self.run_dir), "hrpose": __version__}
        keypoints = self.schema.to_dict()
        if epoch % self.config.save_every == 0 or epoch >= self.config.epochs:
            save_checkpoint(self.run_dir / "last.pt", self.saved_model, self.model_config,
                            train_state=self._train_state(epoch, metrics["lr"]), meta=meta, keypoints=keypoints)
        if improved:
            save_checkpoint(self.run_dir / "best.pt", self.saved_model, self.model_config, meta=meta, keypoints=keypoints)
        write_history(self.run_dir, self.history)

    def _train_state(self, epoch: int, last_lr: float) -> dict[str, Any]:
        """What --resume needs beyond the weights to continue bit for bit."""
        state = {
            "optimizer": plain_optimizer_state(self.optimizer),
            "scheduler": {"kind": "multistep+linear-warmup", "milestones": list(self.lr_drops),
                          "gamma": 0.1, "warmup_epochs": self.config.warmup_epochs, "base_lr": self.config.lr,
                          "steps_per_epoch": self.plan.steps_per_epoch, "last_lr": last_lr},
            "epoch": epoch,
            "best_ap": self.best_ap,
            "best_epoch": self.best_epoch,
            "history": self.history,
            "rng": rng_states(self.runtime.device),
            "skipped_images": list(self.skipped),
        }
        if self.distiller is not None and self.distiller.adapter is not None:
            state["adapter"] = self.distiller.adapter.state_dict()
        if self.ema is not None:
            state["raw_weights"] = self.raw_model.state_dict()
            state["ema_updates"] = self.ema.updates
        return state


def run(config: TrainConfig, reporter: TrainReporter | None = None) -> TrainResult:
    """Train as ``config`` says (resuming when config.resume); under torchrun, one call per process."""
    trainer = _Trainer(config, reporter)
    try:
        trainer.setup()
        return trainer.run()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
