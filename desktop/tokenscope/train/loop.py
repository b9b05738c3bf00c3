"""The training loop: one process, or several under torchrun (chosen by environment), each
holding the whole model (strategy "ddp", PyTorch DDP) or a shard of it ("fsdp", FSDP2; see
tokenscope.train.fsdp).

    python -m tokenscope.train --config run.json
    torchrun --nproc-per-node 2 -m tokenscope.train --config run.json
    python -m tokenscope.train.torchrun ...    the same, exiting 0 after a clean SIGTERM stop

Every process draws the same global batch for a step (it depends only on seed and step) and
takes its share of rows (in evaluations too), so N processes follow the same trajectory as one.
Rank 0 alone writes events and checkpoints, and holds the run folder's lock while it does.
"""

from __future__ import annotations

import math
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from tokenscope.files import atomic_write_text
from tokenscope.lm.config import ModelConfig
from tokenscope.lm.errors import TokenscopeError
from tokenscope.lm.model import Transformer
from tokenscope.lm.tokenizer import Tokenizer
from tokenscope.train import checkpoints as ckpt
from tokenscope.train import icl_eval
from tokenscope.train.config import TrainConfig
from tokenscope.train.corpus import CorpusError, Interrupted
from tokenscope.train.devices import peak_flops
from tokenscope.train.events import (
    CheckpointEvent,
    DoneEvent,
    ErrorEvent,
    EvalEvent,
    EventWriter,
    ProgressEvent,
    StartEvent,
    StepEvent,
    WarningEvent,
)
from tokenscope.train.memory import check_fits
from tokenscope.train.prepare import prepare_data
from tokenscope.train.reports import report_probes, report_samples
from tokenscope.train.run_folder import (
    STOP_FILE,
    RunFolderBusy,
    RunLock,
    remove_leftovers,
    set_aside_earlier_run,
)
from tokenscope.train.runtime import (
    OtherRankFailed,
    Runtime,
    autocast_dtype,
    clip_gradients,
    one_line,
    ranks,
    start_runtime,
)
from tokenscope.train.speed import adamw, compile_for_training
from tokenscope.train.stop_request import StopRequested
from tokenscope.train.token_files import TokenDataset

if TYPE_CHECKING:
    from torch.distributed.fsdp import FSDPModule

EVAL_SEED_OFFSET = 1_000_003  # eval batches come from their own stream, the same every time


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warmup to the peak, then cosine decay to the minimum at the last step."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return config.min_learning_rate + cosine * (config.learning_rate - config.min_learning_rate)


@dataclass
class _RunState:
    """What a run carries from step to step."""

    model: Transformer
    tokenizer: Tokenizer
    optimizer: torch.optim.Optimizer
    train: TokenDataset
    val: TokenDataset
    # What the steps run: the DDP wrapper, or the model itself (alone, or sharded in place).
    training_model: torch.nn.Module
    resumed_from: Path | None = None
    scaler: torch.amp.GradScaler | None = None  # set once the state is built
    step: int = 0
    best_val: float = math.inf
    last_loss: float = math.nan
    lr: float = 0.0
    grad_norm: float = 0.0
    bad_steps: int = 0
    step_times: list[float] = field(default_factory=list)


class PreparationStopped(Exception):  # a request, not an error
    """A stop was asked for before the first step (while reading or tokenizing the corpus)."""


class Trainer:
    """One training run. `run()` returns the final status: completed, stopped or failed.

    Nothing is touched before `run()`: there the folder is locked (one trainer per folder),
    and every failure from then on ends in an `error` and a `done` event.
    """

    def __init__(
        self, config: TrainConfig, *, resume: bool = False, stop_at_step: int | None = None
    ) -> None:
        self.config = config
        self.resume = resume
        self.stop_at_step = stop_at_step
        self.run_dir = Path(config.out_dir)
        self._rt: Runtime | None = None  # set when run() starts
        self.is_main = ranks()[1] == 0
        # Events go to stdout only until the folder is ours: a trainer refused at the lock
        # must not write into another run's events.jsonl.
        self.events = EventWriter(None, enabled=self.is_main)
        self.stop = StopRequested(self.run_dir)
        self.lock: RunLock | None = None
        self.corpus_info: dict[str, Any] = {}  # what the corpus held, when prepared in this run

    # ----- set-up --------------------------------------------------------------------------

    @property
    def rt(self) -> Runtime:
        """The processes this run spans (known once `run()` has started)."""
        assert self._rt is not None, "the run has not started"
        return self._rt

    @property
    def sharded(self) -> bool:
        """FSDP over several processes (one process has nothing to shard: it trains alone)."""
        return self.config.strategy == "fsdp" and self.rt.world > 1

    def _take_folder(self) -> None:
        """Lock the run folder (rank 0), tidy what a killed trainer left, and set aside what
        an earlier run left when this is a new run. Every rank learns if the lock failed."""
        problem: Exception | None = None
        if self.rt.is_main:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                self.lock = RunLock.acquire(self.run_dir)
            except (OSError, RunFolderBusy) as e:
                problem = e
        if self.rt.any(problem is not None):
            if problem is not None:
                raise problem
            raise OtherRankFailed
        if not self.rt.is_main:
            return
        remove_leftovers(self.run_dir)
        earlier = None if self.resume else set_aside_earlier_run(self.run_dir)
        self.events.open_file(self.run_dir / "events.jsonl")
        if earlier is not None:
            self.events.emit(
                WarningEvent(message=f"this folder held an earlier run: it was moved to {earlier}")
            )

    def _prepare_data(self, resume_from: Path | None) -> Tokenizer:
        """Tokenizer and token files, made by rank 0, or reused when resuming and complete.

        The other ranks wait, then all learn together whether rank 0 succeeded, stopped or
        failed, so that no rank is left waiting for the others under torchrun."""
        tok_path = self.run_dir / "tokenizer.json"
        problem: Exception | None = None
        if self.rt.is_main:
            try:
                tokenizer, self.corpus_info = prepare_data(
                    self.config, self.run_dir, self.events,
                    resume=self.resume, resume_from=resume_from, should_stop=self.stop.requested,
                )  # fmt: skip
            except Exception as e:
                problem = e
        outcome = self.rt.max(0 if problem is None else 1 if isinstance(problem, Interrupted)
                                  else 2)  # fmt: skip
        if problem is not None:
            raise problem
        if outcome == 1:
            raise Interrupted
        if outcome == 2:
            raise OtherRankFailed
        if not self.rt.is_main:
            tokenizer = Tokenizer.from_file(tok_path)
        return tokenizer

    def _build_model(self, tokenizer: Tokenizer, resume_from: Path | None) -> Transformer:
        c = self.config
        if resume_from is not None:
            from tokenscope.lm.checkpoint import load_checkpoint

            model = load_checkpoint(resume_from).transformer
        elif c.init_from:
            from tokenscope.lm.loading import load_model

            loaded = load_model(c.init_from, dtype="float32")  # trainable, not packed
            if loaded.tokenizer.vocab_size != tokenizer.vocab_size:
                raise TokenscopeError(
                    'fine-tuning keeps the model\'s vocabulary: use tokenizer "model"'
                )
            model = loaded.transformer
        else:
            model_config = c.model_config(tokenizer.vocab_size)
            self._check_memory(model_config)
            model = Transformer(model_config).init_weights(seed=c.seed)
        if self.sharded:
            return model.train()  # sharding moves each shard to the device, never the whole
        return model.to(self.rt.device).train()

    def _check_memory(self, model_config: ModelConfig) -> None:
        """Refuse, before allocating, a model and batch this device cannot hold."""
        c = self.config
        micro = max(1, c.batch_size // c.grad_accum // self.rt.world)
        context = min(c.context or model_config.context_length, model_config.context_length)
        shards = self.rt.world if self.sharded else 1
        check_fits(model_config, micro, context, self.rt.device, shards=shards)

    # ----- batches and losses --------------------------------------------------------------

    def _rows(self, data: TokenDataset, stream: int, count: int, length: int) -> np.ndarray:
        return data.window_starts(self.config.seed, stream, count, length)

    def _loss(self, model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> torch.Tensor:
        """Every token's loss (B, T)."""
        device = self.rt.device
        xt = torch.from_numpy(x).to(device, non_blocking=True)
        yt = torch.from_numpy(y).to(device, non_blocking=True)
        dtype = self.autocast_dtype
        ctx = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
        with ctx:
            logits = model(xt)  # (B, T, V)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), yt.reshape(-1),
                               reduction="none")  # fmt: skip
        return loss.reshape(yt.shape)

    @torch.no_grad()
    def _evaluate(self, model: Transformer, train: TokenDataset, val: TokenDataset,
                  tokenizer: Tokenizer) -> dict:  # fmt: skip
        """Mean losses on the same batches every time, on every rank (each its share of the
        rows), and the ICL measures (icl_eval) from the validation loss by position."""
        rt, batches = self.rt, self.config.eval_batches
        model.eval()
        means = []
        for data in (train, val):
            length = min(self.context, len(data) - 1)
            rows = []
            for i in range(batches):
                starts = self._rows(data, EVAL_SEED_OFFSET + i, self.micro_global, length)
                x, y = data.batch(starts[rt.rank :: rt.world], length)
                rows.append(self._loss(model, x, y).mean(0))
            by_position = torch.stack(rows).mean(0)  # (T,): the last split's is val's
            means.append(float(by_position.mean()))
        metrics = icl_eval.measure(model, tokenizer, by_position, mean=rt.mean,
                                   heads=rt.is_main and not self.sharded)  # fmt: skip
        model.train()
        model._head_copy = None  # no copy of the whole head outlives the evaluation
        train_loss, val_loss = self.rt.mean(means)
        return {
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_perplexity": math.exp(min(val_loss, 50.0)),
            **metrics,
        }

    # ----- the run -------------------------------------------------------------------------

    def run(self) -> str:
        self.stop.install()
        try:
            self._rt = start_runtime(self.config)
            if self.config.threads:
                torch.set_num_threads(self.config.threads)
            self._take_folder()
            return self._run()
        except PreparationStopped:
            self.events.emit(DoneEvent(status="stopped", step=0, checkpoint="",
                                       message="stopped before the first step"))  # fmt: skip
            return "stopped"
        except OtherRankFailed:
            return "failed"  # rank 0 reported it
        except (TokenscopeError, OSError) as e:
            return self._fail(one_line(e))
        except torch.OutOfMemoryError as e:
            return self._fail(
                f"out of memory: {str(e).splitlines()[0]}; try a smaller batch or model"
            )
        except Exception as e:
            self._fail(f"{type(e).__name__}: {e} (this is a bug in Tokenscope: please report it)")
            raise
        finally:
            self.stop.uninstall()
            self.events.close()
            if self.lock is not None:
                self.lock.release()
            if self._rt is not None and self._rt.world > 1 and dist.is_initialized():
                dist.destroy_process_group()

    def _fail(self, message: str) -> str:
        self.events.emit(ErrorEvent(message=message))
        self.events.emit(DoneEvent(status="failed", message=message))
        return "failed"

    def _run(self) -> str:
        try:
            state = self._set_up()
        except Interrupted:
            raise PreparationStopped from None
        self._announce(state)
        status = self._train(state)
        self.events.emit(
            DoneEvent(
                status=status,
                step=state.step,
                loss=state.last_loss,
                best_val_loss=state.best_val,
                checkpoint=str(ckpt.latest_checkpoint(self.run_dir) or ""),
                best_checkpoint=str(ckpt.best_checkpoint(self.run_dir) or ""),
            )
        )
        return status

    # ----- the run's stages ----------------------------------------------------------------

    def _set_up(self) -> _RunState:
        """Data, tokenizer, model, optimizer and the step to start from."""
        c, rt = self.config, self.rt
        if rt.is_main:
            # A STOP file asks the run in progress to stop; a run starting now is a new request.
            (self.run_dir / STOP_FILE).unlink(missing_ok=True)
        resume_from = ckpt.checkpoint_to_resume(self.run_dir) if self.resume else None
        if self.resume and resume_from is None and rt.is_main:
            self.events.emit(WarningEvent(message="nothing to resume: starting a new run"))
        if resume_from is None and not c.init_from and c.tokenizer == "bpe":
            # Before reading the corpus: the tokenizer will have at most vocab_size tokens.
            self._check_memory(c.model_config(c.vocab_size))
        tokenizer = self._prepare_data(resume_from)
        if rt.is_main and resume_from is None:
            atomic_write_text(self.run_dir / "run.json", c.to_json())
        if self.stop.requested():
            raise Interrupted
        self.micro_global = c.batch_size // c.grad_accum
        if self.micro_global % rt.world:
            raise TokenscopeError(
                f"batch_size / grad_accum = {self.micro_global} must divide evenly over "
                f"{rt.world} processes"
            )
        if rt.is_main:  # the window says what is happening between the text and the first step
            self.events.emit(ProgressEvent(stage="model", done=0, total=1))
        model = self._build_model(tokenizer, resume_from)
        self.context = min(c.context or model.config.context_length, model.config.context_length)
        self.autocast_dtype = autocast_dtype(c, rt.device)
        vocab = model.config.vocab_size
        train = TokenDataset(self.run_dir / "data" / "train.bin", vocab)
        val = TokenDataset(self.run_dir / "data" / "val.bin", vocab)
        if len(train) <= self.context:
            raise CorpusError(
                f"the training split has {len(train)} tokens; the context is {self.context}: "
                "use more text or a shorter context"
            )
        training_model = self._distribute(model)
        self.compiled: bool | None = None  # not asked for
        if c.compile:  # one trial step of the training shape compiles it (or says why not)
            starts = self._rows(train, 0, self.micro_global, self.context)[rt.rank :: rt.world]
            x, y = train.batch(starts, self.context)
            training_model, self.compiled = compile_for_training(
                training_model, lambda m: self._loss(m, x, y).mean(), rt.any,
                lambda text: self.events.emit(WarningEvent(message=text)))  # fmt: skip
        optimizer = adamw(model, c, rt.device)  # after sharding: it must hold the shards
        state = _RunState(model, tokenizer, optimizer, train, val, resumed_from=resume_from,
                          training_model=training_model)  # fmt: skip
        if resume_from is not None:
            saved = self._load_training_state(resume_from, state)
            state.step = saved["step"]
            state.best_val = saved.get("best_val_loss") or math.inf
        state.scaler = self._grad_scaler()
        return state

    def _distribute(self, model: Transformer) -> torch.nn.Module:
        """What the steps run: the model alone, wrapped in DDP, or sharded in place (FSDP)."""
        rt = self.rt
        if self.sharded:
            from tokenscope.train import fsdp

            fsdp.shard(model, rt.device, rt.world)
            return model
        if rt.world > 1:
            return torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None
            )
        return model

    def _load_training_state(self, checkpoint: Path, state: _RunState) -> dict[str, Any]:
        """Restore the optimizer from `checkpoint` (every rank reads it, as it read the
        weights); return the saved training state (step, best validation loss)."""
        if not self.sharded:
            return ckpt.load_training_state(checkpoint, state.optimizer)
        from tokenscope.train import fsdp

        optimizer_state, saved = ckpt.read_training_state(checkpoint)
        fsdp.load_optimizer_state(state.model, state.optimizer, optimizer_state)
        return saved

    def _grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for float16 (a no-op otherwise). Under FSDP each rank checks only its
        shards for overflow: the sharded scaler makes them agree on skipping a step."""
        enabled = self.autocast_dtype == torch.float16
        if self.sharded and enabled:
            from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

            return ShardedGradScaler(device=self.rt.device.type)
        return torch.amp.GradScaler(enabled=enabled)

    def _announce(self, state: _RunState) -> None:
        """The start event: what is trained, where, how fast it could go."""
        c, rt, config = self.config, self.rt, state.model.config
        threads = torch.get_num_threads()
        self.flops_per_token = 3 * config.flops_per_token(context=self.context)
        self.peak = peak_flops(rt.device, threads) * rt.world
        self.tokens_per_step = c.batch_size * self.context
        self.events.emit(
            StartEvent(
                config=c.to_dict(),
                model=config.to_dict(),
                parameters=config.parameter_count(),
                device=str(rt.device),
                world_size=rt.world,
                threads=threads,
                precision=str(self.autocast_dtype or torch.float32).replace("torch.", ""),
                compiled=self.compiled,
                peak_flops=self.peak,
                tokens_per_step=self.tokens_per_step,
                resumed_from=state.step if state.resumed_from else None,
                corpus=self.corpus_info,
                run_dir=str(self.run_dir),
            )
        )

    def _train(self, state: _RunState) -> str:
        """Steps until the end or a stop; "completed" or "stopped"."""
        c = self.config
        while state.step < c.steps:
            started = time.perf_counter()
            stepped = self._optimizer_step(state)
            state.step += 1
            if not stepped:
                continue
            state.step_times.append(time.perf_counter() - started)
            if self._after_step(state):
                return "stopped"
        return "completed"

    def _optimizer_step(self, state: _RunState) -> bool:
        """One step over a global batch (with accumulation); False when it was skipped
        because the loss was not finite."""
        c, rt, step = self.config, self.rt, state.step
        assert state.scaler is not None  # made with the state
        state.lr = learning_rate(step, c)
        for group in state.optimizer.param_groups:
            group["lr"] = state.lr
        torch.manual_seed(c.seed * 7919 + step)  # dropout masks depend on the step alone
        total = torch.zeros((), device=rt.device)
        for micro in range(c.grad_accum):
            starts = self._rows(
                state.train, step * c.grad_accum + micro, self.micro_global, self.context
            )
            x, y = state.train.batch(starts[rt.rank :: rt.world], self.context)
            sync = micro == c.grad_accum - 1 or rt.world == 1
            with nullcontext() if sync else self._no_sync(state):
                loss = self._loss(state.training_model, x, y).mean() / c.grad_accum
                state.scaler.scale(loss).backward()
            total += loss.detach()
        if rt.world > 1:
            dist.all_reduce(total)
            total /= rt.world
        loss_value = float(total)
        if not math.isfinite(loss_value):
            state.optimizer.zero_grad(set_to_none=True)
            state.bad_steps += 1
            self.events.emit(WarningEvent(step=step, message=f"loss is {loss_value}: step skipped"))
            if state.bad_steps >= c.max_bad_steps:
                raise TokenscopeError(
                    f"the loss was not finite for {state.bad_steps} steps in a row "
                    f"(at step {step}); try a lower learning rate"
                )
            return False
        state.bad_steps = 0
        state.scaler.unscale_(state.optimizer)
        state.grad_norm = clip_gradients(state.model, c.grad_clip)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.optimizer.zero_grad(set_to_none=True)
        state.last_loss = loss_value
        return True

    def _no_sync(self, state: _RunState) -> AbstractContextManager[None]:
        """Accumulate this micro-step's gradients without reducing them over the processes."""
        if self.sharded:
            from tokenscope.train import fsdp

            return fsdp.gradient_sync_off(cast("FSDPModule", state.model))  # sharded in place
        ddp = cast(torch.nn.parallel.DistributedDataParallel, state.training_model)
        return ddp.no_sync()

    def _after_step(self, state: _RunState) -> bool:
        """Report, evaluate, sample, probe and save as the schedule says; True to stop now."""
        c, rt, step = self.config, self.rt, state.step
        recent = state.step_times[-20:]
        seconds = sum(recent) / len(recent)
        tokens_per_s = self.tokens_per_step / seconds
        # The first step too: on a large plan log_every steps can take minutes to come.
        if step % c.log_every == 0 or step == c.steps or step == 1:
            self.events.emit(
                StepEvent(
                    step=step,
                    loss=state.last_loss,
                    lr=state.lr,
                    grad_norm=state.grad_norm,
                    tokens_per_s=tokens_per_s,
                    mfu=self.flops_per_token * tokens_per_s / self.peak,
                    eta_s=seconds * (c.steps - step),
                    tokens=step * self.tokens_per_step,
                )
            )
        is_last = step == c.steps
        evaluate = step % c.eval_every == 0 or is_last
        sample = bool(c.sample_prompts) and (step % c.sample_every == 0 or is_last)
        improved = False
        if evaluate:  # on every rank, so every rank knows whether this is the best so far
            metrics = self._evaluate(state.model, state.train, state.val, state.tokenizer)
            improved = metrics["val_loss"] < state.best_val
            state.best_val = min(state.best_val, metrics["val_loss"])
            self.events.emit(EvalEvent(step=step, **metrics, best=improved))
        stop_now = self.rt.any(self.stop.requested() or step == self.stop_at_step)
        save = step % c.checkpoint_every == 0 or is_last or stop_now or improved
        if (evaluate and c.probes) or sample or save:
            whole = self._whole_model(state)
            if rt.is_main and evaluate:
                assert whole is not None  # rank 0 holds the whole model
                report_probes(self.events, self.config, step, whole, state.tokenizer)
            if rt.is_main and sample:
                assert whole is not None
                report_samples(self.events, self.config, step, whole, state.tokenizer)
            if save:
                self._save(step, state, whole, improved)
        self.rt.barrier()
        return stop_now and not is_last

    def _whole_model(self, state: _RunState) -> Transformer | None:
        """The whole model on rank 0 (None on the others), for probes, samples and
        checkpoints. Under FSDP a copy gathered onto rank 0's CPU, every rank taking part."""
        if self.sharded:
            from tokenscope.train import fsdp

            return fsdp.full_model(state.model)
        return state.model if self.rt.is_main else None

    def _whole_optimizer_state(self, state: _RunState) -> dict[str, Any] | None:
        """The optimizer's state as one process holds it, on rank 0 (None on the others)."""
        if self.sharded:
            from tokenscope.train import fsdp

            return fsdp.full_optimizer_state(state.model, state.optimizer)
        return state.optimizer.state_dict() if self.rt.is_main else None

    def _save(self, step: int, state: _RunState, model: Transformer | None, is_best: bool) -> None:
        """Rank 0 writes `model` (the whole model) and the optimizer's state; under FSDP
        every rank first takes part in gathering that state."""
        optimizer_state = self._whole_optimizer_state(state)
        if not self.rt.is_main:
            return
        assert model is not None and optimizer_state is not None  # rank 0 holds both
        best_val = state.best_val
        path = ckpt.save_training_checkpoint(
            self.run_dir,
            step,
            model,
            state.tokenizer,
            optimizer_state,
            {"best_val_loss": best_val if math.isfinite(best_val) else None},
            name=self.config.name,
            keep=self.config.keep_checkpoints,
        )
        if is_best:
            ckpt.mark_best(self.run_dir, path, best_val)
        self.events.emit(CheckpointEvent(step=step, path=str(path)))
