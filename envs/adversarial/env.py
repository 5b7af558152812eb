"""`evol/AdversarialImage-v0`: red-team a digits classifier with attacks or pixel edits, within a budget."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.adversarial.data import NUM_CLASSES, SPLITS, digits
from envs.core import RENDER_MODE, TextEnv, turns_param
from envs.errors import TaskOptionError
from envs.params import Param, choice_param, task_param

MODES = ("image", "text")
SCALE = 16  # an 8x8 digit is shown as a 128x128 picture, 16x16 screen pixels per image pixel
IMAGE_SHAPE = (8 * SCALE, 8 * SCALE)
TASKS_PER_SPLIT = {"train": 1347, "test": 450}  # envs.adversarial.data's fixed split
NORMS = ("linf", "l2")
METHODS = ("fgsm", "pgd")
BUDGET_WEIGHT = 0.5  # reward = 1 - BUDGET_WEIGHT * (share of the budget spent)
EXPERT_EPS_SHARES = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)  # of eps_max, smallest first
EXPERT_STEPS = 20
STANDARD_EPOCHS = 25

_NUMBER = r"(?:\d{1,3}(?:\.\d{1,6})?|\.\d{1,6})"  # bounded: no run of digits is read without limit
_ATTACK = re.compile(r"attack\s+(fgsm|pgd)((?:\s+[a-z]{1,6}=[a-z0-9.]{1,12})*)")
_SETTING = re.compile(r"([a-z]{1,6})=([a-z0-9.]{1,12})")
_EDIT = re.compile(rf"\(\s*(\d)\s*,\s*(\d)\s*\)\s*=\s*({_NUMBER})")

INSTRUCTION = """\
You red-team a classifier of 8x8 handwritten digits. {goal} {seeing}

Each turn, send one command:
- `attack fgsm eps=E [norm=linf|l2] [target=T]`
- `attack pgd eps=E [steps=S] [alpha=A] [norm=linf|l2] [target=T]`
  (a white-box attack run for you on the clean image; `target` makes it aim at class T)
- `edit (r,c)=v; (r,c)=v; ...` sets at most {max_pixels} pixels of the clean image (row and column \
0-7, value 0-1).

Budget: eps at most {eps_max} (norm=linf, the default) or {eps_max_l2} (norm=l2); steps at most \
{max_steps}. Every command starts from the clean image. A command over budget or malformed is \
explained and the turn counts. The episode ends when the classifier is fooled: reward \
1 - 0.5 x (share of the budget spent: eps / eps max, or pixels edited / {max_pixels}); \
{max_turns} turns."""


@dataclass(frozen=True)
class Command:
    """A parsed action: an attack (`method`, `eps`, ...) or pixel `edits` [(row, col, value)]."""

    method: str  # "fgsm", "pgd" or "edit"
    eps: float = 0.0
    norm: str = "linf"
    steps: int = 0
    alpha: float | None = None
    target: int | None = None
    edits: tuple[tuple[int, int, float], ...] = ()


@dataclass(frozen=True)
class Budget:
    """What one command may spend."""

    eps_max: float
    eps_max_l2: float
    max_steps: int
    max_pixels: int

    def share(self, command: Command) -> float:
        """The share of the budget `command` spends, in [0, 1]."""
        if command.method == "edit":
            return len(command.edits) / self.max_pixels
        return command.eps / (self.eps_max if command.norm == "linf" else self.eps_max_l2)


class CommandError(ValueError):
    """A malformed or over-budget action; the message says why."""


def parse_command(action: str, budget: Budget) -> Command:
    """The command `action` states, checked against `budget` (a `CommandError` says what is wrong).
    Only the grammar above is read; nothing is evaluated."""
    text = action.strip().lower().strip("`").strip()
    if text.startswith("attack"):
        return _parse_attack(text, budget)
    if text.startswith("edit"):
        return _parse_edits(text[4:], budget)
    raise CommandError("start with `attack fgsm ...`, `attack pgd ...` or `edit (r,c)=v; ...`")


def _parse_attack(text: str, budget: Budget) -> Command:
    match = _ATTACK.fullmatch(text)
    if match is None:
        raise CommandError(
            "write `attack fgsm eps=E` or `attack pgd eps=E steps=S`, then optional `norm=linf|l2`, "
            "`target=T`, `alpha=A` (pgd), as key=value separated by spaces"
        )
    method = match.group(1)
    allowed = {"eps", "norm", "target"} | ({"steps", "alpha"} if method == "pgd" else set())
    settings: dict[str, str] = {}
    for key, value in _SETTING.findall(match.group(2)):
        if key not in allowed:
            raise CommandError(f"{method} takes {sorted(allowed)}, not {key!r}")
        if key in settings:
            raise CommandError(f"{key} is given twice")
        settings[key] = value
    if "eps" not in settings:
        raise CommandError("give the budget as eps=E")
    norm = settings.get("norm", "linf")
    if norm not in NORMS:
        raise CommandError(f"norm must be one of {list(NORMS)}, got {norm!r}")
    eps = _number(settings["eps"], "eps")
    eps_max = budget.eps_max if norm == "linf" else budget.eps_max_l2
    if not 0 < eps <= eps_max:
        raise CommandError(f"over budget: eps must be in (0, {eps_max:g}] for norm={norm}, got {eps:g}")
    steps = 0
    if method == "pgd":
        steps = _integer(settings.get("steps", "10"), "steps")
        if not 1 <= steps <= budget.max_steps:
            raise CommandError(f"over budget: steps must be in [1, {budget.max_steps}], got {steps}")
    alpha = _number(settings["alpha"], "alpha") if "alpha" in settings else None
    if alpha is not None and not 0 < alpha <= eps:
        raise CommandError(f"alpha must be in (0, eps={eps:g}], got {alpha:g}")
    target = _integer(settings["target"], "target") if "target" in settings else None
    if target is not None and not 0 <= target < NUM_CLASSES:
        raise CommandError(f"target must be a class 0-{NUM_CLASSES - 1}, got {target}")
    return Command(method, eps=eps, norm=norm, steps=steps, alpha=alpha, target=target)


def _parse_edits(text: str, budget: Budget) -> Command:
    parts = [part.strip() for part in text.split(";")]
    if parts and not parts[-1]:
        parts.pop()  # a trailing ';'
    if not parts:
        raise CommandError("list the pixels as `edit (r,c)=v; (r,c)=v`")
    if len(parts) > budget.max_pixels:
        raise CommandError(f"over budget: at most {budget.max_pixels} pixels per edit, got {len(parts)}")
    edits: dict[tuple[int, int], float] = {}
    for part in parts:
        match = _EDIT.fullmatch(part)
        if match is None:
            shown = part if len(part) <= 30 else part[:27] + "..."
            raise CommandError(f"{shown!r} is not `(r,c)=v` with r, c in 0-7 and v in [0, 1]")
        row, col, value = int(match.group(1)), int(match.group(2)), float(match.group(3))
        if row > 7 or col > 7:
            raise CommandError(f"pixel ({row},{col}) is outside the 8x8 image (rows and columns 0-7)")
        if value > 1:
            raise CommandError(f"pixel ({row},{col}): a value must be in [0, 1], got {value:g}")
        if (row, col) in edits:
            raise CommandError(f"pixel ({row},{col}) is edited twice")
        edits[(row, col)] = value
    return Command("edit", edits=tuple((r, c, v) for (r, c), v in edits.items()))


def _number(text: str, key: str) -> float:
    if re.fullmatch(_NUMBER, text) is None:
        raise CommandError(f"{key} must be a decimal number like 0.1, got {text!r}")
    return float(text)


def _integer(text: str, key: str) -> int:
    if re.fullmatch(r"\d{1,3}", text) is None:
        raise CommandError(f"{key} must be a whole number, got {text!r}")
    return int(text)


_threads_lock = threading.Lock()
_threads_users = 0
_threads_before = 1


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread for the block: these models are tiny, and threads that wait for busy
    cores cost far more than they bring (a forward pass 0.3 ms alone, 60 ms contended). The setting
    is process-wide: concurrent blocks share it and the last one out restores the caller's."""
    global _threads_users, _threads_before
    with _threads_lock:
        if _threads_users == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads_users += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_before)


# ---- classifiers ------------------------------------------------------------------------------
_classifiers: dict[str, torch.nn.Module] = {}
_classifiers_lock = threading.Lock()


def standard_classifier() -> torch.nn.Module:
    """The default target: a `DigitsClassifier` trained (seeded, a few seconds) on the digits train
    split at first use, kept for the life of the process."""
    return _cached("standard", _train_standard)


def load_target(path: str | Path) -> torch.nn.Module:
    """A classifier saved with `envs.adversarial.models.save_classifier`, loaded once per process."""
    from envs.adversarial.models import load_classifier

    return _cached(str(Path(path).resolve()), lambda: load_classifier(path))


def _cached(key: str, build: Any) -> torch.nn.Module:
    with _classifiers_lock:
        if key not in _classifiers:
            model = build()
            model.eval()
            for parameter in model.parameters():
                parameter.requires_grad_(False)
            _classifiers[key] = model
        return _classifiers[key]


def _train_standard() -> torch.nn.Module:
    from envs.adversarial.models import DigitsClassifier, train_standard

    x, y = digits("train")
    # The model seeds torch's global generator: leave the caller's alone (and train even under no_grad).
    with torch.random.fork_rng(), torch.enable_grad(), one_thread():
        return train_standard(DigitsClassifier(seed=0), x, y, epochs=STANDARD_EPOCHS, seed=0)


# ---- the env ----------------------------------------------------------------------------------
class AdversarialImageEnv(TextEnv):
    """
    AdversarialImage: fool a digits classifier with a white-box attack or a few pixel edits.

    ## Description

    The agent red-teams an image classifier: it is shown an 8x8 handwritten digit (scikit-learn's
    digits, pixels in [0, 1]; `envs.adversarial.data`), its true label, and the classifier's
    prediction and confidence, and it must make the classifier wrong (or, in a targeted task,
    make it say the target class) within a declared budget. It may run an attack (FGSM or
    PGD of `envs.adversarial.attacks`, L-inf or L2, untargeted or aimed at a class) with an
    eps, steps and step size of its choice, or edit a few pixels by hand. After each
    command the observation shows the resulting image and what the classifier now says.

    The classifier is the `classifier` kwarg: a directory written by
    `envs.adversarial.models.save_classifier` (the server's path, never a client's: an
    undefended and a defended model are two configs of the same env, e.g. two `evol eval
    --env-kwargs` runs). Without it, a standard `DigitsClassifier` is trained on the train
    split at first use (seeded, a few seconds) and kept for the process.

    Observations are always `{"text", "image"}`: in `mode="image"` (default) the image is the
    digit drawn 128x128 (16x16 screen pixels per image pixel, grey level = value, 0 black,
    1 white); in `mode="text"` the image is blank (zeros) and the text lists the 8x8 pixel
    values (two decimals), row 0 first.

    ## Instruction and action format

    One command per turn (case does not matter; only this grammar is read, nothing is evaluated):

    | command | meaning |
    |---|---|
    | `attack fgsm eps=E [norm=linf\\|l2] [target=T]` | one signed-gradient step of size eps |
    | `attack pgd eps=E [steps=S] [alpha=A] [norm=linf\\|l2] [target=T]` | projected gradient descent (random start, seed 0; steps default 10; alpha default the attack's) |
    | `edit (r,c)=v; (r,c)=v; ...` | set up to `max_pixels` pixels (row, column 0-7; value in [0, 1]) |

    Each command starts from the clean image. A malformed command, an unknown or repeated
    key, eps above the budget of its norm (`eps_max` for linf, `eps_max_l2` for l2) or not
    positive, steps above `max_steps`, alpha above eps, a target outside 0-9, more pixels
    than `max_pixels`, a pixel outside the image or a value outside [0, 1] is invalid: the
    observation says why, `info["invalid"]` is true and the turn counts.

    ## Rewards

    When a command fools the classifier: `1 - 0.5 * spent`, where spent is the share of the
    budget the command used: `eps / eps_max` (or `eps / eps_max_l2` for L2) for an attack,
    `pixels edited / max_pixels` for an edit (so 0.5 at the full budget, near 1 for a tiny
    one; steps are not charged). A command that does not fool it: 0.

    ## Success

    The classifier is fooled: its prediction on the attacked image is not the true label
    (untargeted task) or is the target class (targeted task).

    ## Termination

    Terminated when the classifier is fooled; truncated after `max_turns` turns (default 5).
    `info` after each command carries `prediction`, `confidence`, `fooled` and `spent`; at the
    end `info["outcome"]` has the label, target, clean prediction and the best reward's budget.
    A digit the classifier already gets wrong counts as fooled by any valid command.

    ## Task options

    `reset(seed, options={"task": k, "split": "train" | "test", "target": T})`: task k is
    digit k of the split (below 1,347 in train, 450 in test); `target` (0-9, not the label)
    makes the task targeted. Without `task`, k is drawn from the env's seeded generator.
    Constructor kwargs: `classifier` (server side), `eps_max` (default 0.3), `eps_max_l2`
    (default 2.0), `max_steps` (default 50), `max_pixels` (default 8), `mode`, `max_turns`,
    `render_mode`. The expert runs PGD (20 steps, L-inf) on a grid of eps from 5% of
    `eps_max` up and sends the smallest that fools the classifier (it tries privately).

    ## Registered configurations

    - `evol/AdversarialImage-v0`: the standard classifier, image mode, 5 turns.
    """

    reward_range = (0.0, 1.0)
    max_turns = 5
    success_rule = "the classifier is fooled (wrong class, or the target class) within the budget"
    multimodal = True
    image_shape = IMAGE_SHAPE
    splits = SPLITS
    max_action_length = 512
    max_observation_length = 8192
    kwarg_params = {
        "classifier": Param(
            "object",
            of=(str, Path),
            server_only=True,
            help="a directory from save_classifier (default: a standard classifier trained at first use)",
        ),
        "eps_max": Param("float", default=0.3, minimum=0.01, maximum=1.0, help="L-inf eps budget"),
        "eps_max_l2": Param("float", default=2.0, minimum=0.01, maximum=8.0, help="L2 eps budget"),
        "max_steps": Param("int", default=50, minimum=1, maximum=200, help="PGD steps budget"),
        "max_pixels": Param("int", default=8, minimum=1, maximum=64, help="pixels per edit"),
        "mode": choice_param(MODES, default="image", help="image: the digit drawn; text: its pixel values"),
        "max_turns": turns_param(5, maximum=50),
        "render_mode": RENDER_MODE,
    }
    option_params = {
        "task": task_param(TASKS_PER_SPLIT),
        "split": choice_param(SPLITS, help="train or test (default test)"),
        "target": Param("int", minimum=0, maximum=NUM_CLASSES - 1, help="a target class: a targeted task"),
    }

    def __init__(
        self,
        classifier: str | Path | None = None,
        eps_max: float = 0.3,
        eps_max_l2: float = 2.0,
        max_steps: int = 50,
        max_pixels: int = 8,
        mode: str = "image",
        max_turns: int | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        if classifier is not None and not Path(classifier).is_dir():
            raise ValueError(f"classifier must be a directory written by save_classifier: {classifier}")
        self.classifier_path = classifier
        self.budget = Budget(float(eps_max), float(eps_max_l2), int(max_steps), int(max_pixels))
        self.mode = mode or "image"
        self._model: torch.nn.Module | None = None
        self._clean: torch.Tensor | None = None  # 1x1x8x8
        self._label = 0
        self._target: int | None = None
        self._fooled = False
        self._best: dict[str, Any] | None = None
        self._expert: str | None = None
        self._clean_prediction = 0

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            self._model = (
                standard_classifier() if self.classifier_path is None else load_target(self.classifier_path)
            )
        return self._model

    # ---- episode ------------------------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        split = self.select_choice(options, "split", SPLITS, "test")
        x, y = digits(split)
        index = self.select_task(options, len(x))
        self._clean, self._label = x[index : index + 1].clone(), int(y[index])
        self._target = options.get("target")
        if self._target == self._label:
            raise TaskOptionError(f"options.target must differ from the digit's label {self._label}")
        self._fooled, self._best, self._expert = False, None, None
        prediction, confidence = self._predict(self._clean)
        self._clean_prediction = prediction
        if self._target is None:
            goal = f"Make it predict any class but the true label {self._label}."
        else:
            goal = f"Make it predict the target class {self._target} (the true label is {self._label})."
        seeing = (
            "You see the digit as an image (grey level = pixel value)."
            if self.mode == "image"
            else "You read the digit's 8x8 pixel values."
        )
        b = self.budget
        instruction = INSTRUCTION.format(
            goal=goal,
            seeing=seeing,
            max_pixels=b.max_pixels,
            eps_max=f"{b.eps_max:g}",
            eps_max_l2=f"{b.eps_max_l2:g}",
            max_steps=b.max_steps,
            max_turns=self.max_turns,
        )
        head = f"{instruction}\n\nThe clean digit. {self._status_line(prediction, confidence)}"
        info = {
            "instruction": instruction,
            "task": index,
            "split": split,
            "label": self._label,
            "target": self._target,
            "prediction": prediction,
            "confidence": confidence,
            "mode": self.mode,
        }
        return self._observation(head, self._clean), info

    def _step(self, action: str) -> tuple[Any, float, bool, dict[str, Any]]:
        try:
            command = parse_command(action, self.budget)
        except CommandError as error:
            return self.invalid(f"Invalid command: {error}.")
        image = self._apply(command)
        prediction, confidence = self._predict(image)
        fooled = self._is_fooled(prediction)
        spent = self.budget.share(command)
        reward = 1.0 - BUDGET_WEIGHT * spent if fooled else 0.0
        verdict = "Fooled" if fooled else "Not fooled"
        text = f"{verdict} ({_describe(command)}). {self._status_line(prediction, confidence)}"
        if fooled:
            self._fooled = True
            self._best = {"command": _describe(command), "spent": round(spent, 6), "reward": reward}
        info = {"prediction": prediction, "confidence": confidence, "fooled": fooled, "spent": spent}
        return self._observation(text, image), reward, fooled, info

    def _success(self) -> bool:
        return self._fooled

    def outcome(self) -> dict[str, Any]:
        return {
            "label": self._label,
            "target": self._target,
            "clean_prediction": self._clean_prediction,
            "fooled_by": self._best,
        }

    def expert_action(self) -> str:
        """PGD (L-inf, 20 steps) at the smallest eps of a grid that fools the classifier, found by
        trying privately; the full budget if none does."""
        if self._expert is None:
            steps = min(EXPERT_STEPS, self.budget.max_steps)
            commands = [
                Command("pgd", eps=round(share * self.budget.eps_max, 4), steps=steps, target=self._target)
                for share in EXPERT_EPS_SHARES
            ]
            chosen = next(
                (c for c in commands if self._is_fooled(self._predict(self._apply(c))[0])), commands[-1]
            )
            self._expert = _describe(chosen)
        return self._expert

    # ---- helpers ------------------------------------------------------------------------------
    def _apply(self, command: Command) -> torch.Tensor:
        """The clean image after `command`."""
        if command.method == "edit":
            image = self._clean.clone()
            for row, col, value in command.edits:
                image[0, 0, row, col] = value
            return image
        from envs.adversarial.attacks import fgsm, pgd

        target = command.target
        label = torch.tensor([self._label])
        goal = None if target is None else torch.tensor([target])
        kwargs: dict[str, Any] = {"norm": command.norm, "targeted": target is not None, "target": goal}
        model = self.model
        with one_thread():
            if command.method == "fgsm":
                adversarial = fgsm(model, self._clean, label, command.eps, **kwargs)
            else:
                adversarial = pgd(
                    model,
                    self._clean,
                    label,
                    command.eps,
                    alpha=command.alpha,
                    steps=command.steps,
                    **kwargs,
                )
        return adversarial.detach().clamp(0.0, 1.0)

    def _predict(self, image: torch.Tensor) -> tuple[int, float]:
        model = self.model
        with torch.no_grad(), one_thread():
            probabilities = torch.softmax(model(image), dim=1)[0]
        prediction = int(probabilities.argmax())
        return prediction, round(float(probabilities[prediction]), 4)

    def _is_fooled(self, prediction: int) -> bool:
        return prediction != self._label if self._target is None else prediction == self._target

    def _status_line(self, prediction: int, confidence: float) -> str:
        goal = "" if self._target is None else f"; target {self._target}"
        return (
            f"True label {self._label}{goal}. The classifier predicts {prediction} "
            f"(confidence {confidence:.2f}). Budget per command: eps <= {self.budget.eps_max:g} (linf) "
            f"or {self.budget.eps_max_l2:g} (l2), steps <= {self.budget.max_steps}, "
            f"pixels <= {self.budget.max_pixels}."
        )

    def _observation(self, text: str, image: torch.Tensor) -> dict[str, Any]:
        pixels = image[0, 0].numpy()
        if self.mode == "text":
            rows = "\n".join(" ".join(f"{v:.2f}" for v in row) for row in pixels)
            return {
                "text": f"{text}\nPixels (row 0 first):\n{rows}",
                "image": np.zeros((*IMAGE_SHAPE, 3), np.uint8),
            }
        return {"text": text, "image": render_digit(pixels)}


def render_digit(pixels: np.ndarray) -> np.ndarray:
    """An 8x8 image in [0, 1] as a 128x128x3 uint8 picture (grey level = value)."""
    grey = np.rint(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)
    grey = np.kron(grey, np.ones((SCALE, SCALE), dtype=np.uint8))
    return np.repeat(grey[:, :, None], 3, axis=2)


def _describe(command: Command) -> str:
    """`command` as the action that states it."""
    if command.method == "edit":
        return "edit " + "; ".join(f"({r},{c})={v:g}" for r, c, v in command.edits)
    parts = [f"attack {command.method}", f"eps={command.eps:g}"]
    if command.method == "pgd":
        parts.append(f"steps={command.steps}")
        if command.alpha is not None:
            parts.append(f"alpha={command.alpha:g}")
    parts.append(f"norm={command.norm}")
    if command.target is not None:
        parts.append(f"target={command.target}")
    return " ".join(parts)
