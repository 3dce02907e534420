"""What every dfd command shares: Hydra's entry point with one-line errors and quiet warnings.

`entry_point("train")` replaces ``hydra.main(config_path=conf, config_name="train")``. An
error caused by the user (a misspelled key or option, a missing value, file or folder, a bad
pairing of options, a bad checkpoint) ends the command with one message that names the thing
and the fix, and exit status 1; anything else (a bug) keeps its traceback.
``HYDRA_FULL_ERROR=1`` shows the traceback of every error, as in plain Hydra.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.errors import (
    ConfigCompositionException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from dfd.runtime.config import CONF_DIR  # (importing dfd.runtime.config registers the resolvers)
from dfd.runtime.errors import UserError
from dfd.runtime.redact import redact, redact_files, redact_logging, redacted_output

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # dfd/
FULL_ERROR = "HYDRA_FULL_ERROR"

# Exception types dfd raises with a message meant for the user. They count as user errors
# when dfd's own code raised them (or a config's _target_ did, through instantiate): the same
# types raised deep inside a library are more likely bugs and keep their traceback.
USER_TYPES: tuple[type[BaseException], ...] = (
    UserError,
    ValueError,
    KeyError,
    TypeError,
    OSError,
    ImportError,
    FloatingPointError,
)

# Third-party notices that commands would print and no dfd user can act on.
NOISE = [
    # transformers 5 calls its own deprecated property while building any model
    (FutureWarning, r".*is_gradient_checkpointing.*is deprecated"),
]
# log records of libraries, by logger name: (logger, message start)
LOG_NOISE = [
    # tracing a vision model for export: CLIP has no loss, transformers guesses one
    (
        "transformers.modeling_utils",
        "`loss_type=None` was set in the config but it is unrecognized",
    ),
    # logging a run's MLflow model: the example is checked (dfd.export.mlflow_model); a
    # failure still raises, only the progress note after the run's results is dropped
    ("mlflow.pyfunc", "Validating input example against model signature"),
]


class _DropMessages(logging.Filter):
    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.starts)


def quiet_known_warnings() -> None:
    """Filter the third-party noise of `NOISE` and `LOG_NOISE`, and transformers' per-model
    "Loading weights" bar (hub downloads keep theirs)."""
    for category, message in NOISE:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in {name for name, _ in LOG_NOISE}:
        starts = tuple(m for n, m in LOG_NOISE if n == name)
        logging.getLogger(name).addFilter(_DropMessages(starts))
    if "transformers" in sys.modules:  # commands that build no model need not import it
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def help_groups(choices: Any) -> str:
    """The option groups of one composed command and the options of each, for ``--help``.

    Used as ``${dfd_help_groups:${hydra:runtime.choices}}`` in conf/hydra/help/*.yaml: it lists
    the groups of that command's own defaults (not every folder of conf/, as Hydra's
    ``$APP_CONFIG_GROUPS`` does), read from conf/ so a new option file shows up by itself.
    """
    lines = []
    for group, choice in sorted(dict(choices).items()):
        if group == "hydra" or group.startswith("hydra/"):
            continue
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        lines.append(f"  {group + '=':<18} {' | '.join(options)}   (now: {choice or 'none'})")
    return "\n".join(lines)


if not OmegaConf.has_resolver("dfd_help_groups"):
    OmegaConf.register_new_resolver("dfd_help_groups", help_groups)


def entry_point(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """Decorate a command's ``main(cfg)``: Hydra composes ``conf/<config_name>.yaml`` with the
    command line, and user errors end as one line on stderr (see the module docstring)."""

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def job(cfg: DictConfig) -> Any:
            _redact_run_files()
            # errors of the job itself end here, so Hydra adds no "Error executing job" line
            # (it would print the command line, passwords included)
            try:
                return task(cfg)
            except Exception as err:
                _exit_if_user_error(err, config_name)
                _exit_with_traceback(err)

        hydra_main = hydra.main(
            version_base="1.3", config_path=str(CONF_DIR), config_name=config_name
        )(job)

        @functools.wraps(task)
        def main() -> Any:
            quiet_known_warnings()
            # Hydra prints composition errors itself and exits, unless this is set; with it,
            # every error reaches the handler below, which decides how to show it
            show_traceback = _show_traceback()
            if not show_traceback:
                os.environ[FULL_ERROR] = os.environ[_OURS] = "1"
            try:
                with redacted_output():
                    return hydra_main()
            except KeyboardInterrupt:
                print(f"{_program()}: interrupted", file=sys.stderr)
                raise SystemExit(130) from None
            except BrokenPipeError:
                # output piped into a reader that stopped (`--help | head`); Python's advice:
                # point stdout at devnull so that the interpreter's final flush is silent too
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise SystemExit(1) from None
            except Exception as err:
                _exit_if_user_error(err, config_name)
                _exit_with_traceback(err)
            finally:
                if not show_traceback:
                    os.environ.pop(FULL_ERROR, None)
                    os.environ.pop(_OURS, None)

        return main

    return decorate


# set while dfd (not the user) has turned HYDRA_FULL_ERROR on
_OURS = "DFD_CLI_FULL_ERROR"


def _show_traceback() -> bool:
    return os.environ.get(FULL_ERROR) == "1" and os.environ.get(_OURS) != "1"


def _exit_if_user_error(err: BaseException, config_name: str) -> None:
    if _show_traceback():
        return
    message = user_message(err, config_name, sys.argv[1:])
    if message is None:
        return
    print(f"{_program()}: error: {redact(message)}", file=sys.stderr)
    raise SystemExit(1) from None


def _exit_with_traceback(err: BaseException) -> NoReturn:
    """A bug (or any error with ``HYDRA_FULL_ERROR=1``): its traceback, passwords masked."""
    text = "".join(traceback.format_exception(err))
    print(redact(text), end="", file=sys.stderr)
    raise SystemExit(1) from None


def _redact_run_files() -> None:
    """Mask passwords in what Hydra saved of this run (``.hydra/{config,hydra,overrides}.yaml``:
    the command line and the composed config) and in every log record from now on."""
    from hydra.core.hydra_config import HydraConfig

    redact_logging()
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.output_subdir is None:
        return
    saved = Path(hydra_cfg.runtime.output_dir) / str(hydra_cfg.output_subdir)
    redact_files(saved.glob("*.yaml"))


def _program() -> str:
    main_module = sys.modules.get("__main__")
    spec = getattr(main_module, "__spec__", None)
    name = getattr(spec, "name", None) or Path(sys.argv[0]).stem
    return name.removesuffix(".__main__")


def user_message(err: BaseException, config_name: str, overrides: list[str]) -> str | None:
    """The one-line message for a user error, or None if `err` looks like a bug."""
    if isinstance(err, OverrideParseException):
        return override_syntax_message(str(err), overrides)
    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        return _missing_option(str(err))
    if isinstance(err, ConfigCompositionException):
        cause = err.__cause__
        if cause is not None and not isinstance(cause, ConfigCompositionException):
            inner = user_message(cause, config_name, overrides)
            if inner is not None:
                return inner
        return _composition_message(str(err), config_name, overrides)
    if isinstance(err, InstantiationException):
        if err.__cause__ is not None:
            inner = _message_of(err.__cause__, from_config=True)
            if inner is not None:
                return inner
        return _first_lines(str(err))
    if isinstance(err, MissingMandatoryValue):
        key = getattr(err, "full_key", None) or _full_key(str(err))
        return f"{key} is not set: pass {key}=<value> on the command line"
    if isinstance(err, InterpolationResolutionError):
        if "Missing mandatory value" in str(err):
            key = _full_key(str(err).replace("full_key:", "at:"))
            return f"{key} is not set: pass {key}=<value> on the command line"
        return _first_lines(str(err))
    return _message_of(err, from_config=False)


def _message_of(err: BaseException, from_config: bool) -> str | None:
    if isinstance(err, InstantiationException | ConfigCompositionException):
        return user_message(err, "", [])
    if not isinstance(err, USER_TYPES):
        return None
    text = _text(err)
    worker = _dataloader_worker_message(text)
    if worker is not None:
        message, origin = worker
        return message if origin is None or _in_dfd(origin) else None
    if isinstance(err, UserError) or from_config or _raised_in_dfd(err):
        return text
    return None


def _text(err: BaseException) -> str:
    # KeyError's str() quotes its message
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        return err.args[0]
    return str(err) or type(err).__name__


def _raised_in_dfd(err: BaseException) -> bool:
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and _in_dfd(frames[-1].filename)


def _in_dfd(filename: str) -> bool:
    path = Path(filename).resolve()
    return PACKAGE_DIR in path.parents and path != Path(__file__).resolve()


def _dataloader_worker_message(text: str) -> tuple[str, str | None] | None:
    """(original message, file it was raised in) of an exception re-raised from a DataLoader
    worker: torch's text is "Caught X in DataLoader worker process N. Original Traceback ...",
    ending with the original ``X: message``."""
    if "in DataLoader worker process" not in text:
        return None
    lines = text.rstrip().splitlines()
    files = re.findall(r'File "([^"]+)"', text)
    tail = lines[-1]
    for i in range(len(lines) - 1, -1, -1):  # the message may span several lines
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt): ", lines[i]):
            tail = "\n".join(lines[i:])
            break
    message = re.sub(r"^[A-Za-z_][\w.]*: ", "", tail)
    return message, files[-1] if files else None


def _first_lines(text: str) -> str:
    # Hydra appends its config search path and hints meant for Hydra's developers
    keep = []
    for line in text.strip().splitlines():
        if line.startswith(("Config search path", "Set the environment variable")):
            break
        keep.append(line.strip())
    return " ".join(x for x in keep if x)


def _full_key(text: str) -> str:
    found = re.search(r"full_key: (\S+)", text)
    if found:
        return found.group(1)
    found = re.search(r"Missing mandatory value: (\S+)", text)
    return found.group(1) if found else "a required value"


# -- overrides Hydra's grammar rejects --------------------------------------------------------

# characters Hydra's override grammar reserves in an unquoted value
_RESERVED = "$()`{}[]<>'\",=:!&|;*?\\"


def override_syntax_message(text: str, overrides: list[str]) -> str:
    """The override Hydra could not parse, what is wrong with it and the same override written
    so that it parses (as typed in a POSIX shell).

    Hydra's parser names the failing override only sometimes, so each one is parsed again on
    its own; the first that fails is the one named.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    args = _override_args(overrides)
    for i, arg in enumerate(args):
        try:
            parser.parse_overrides([arg])
        except OverrideParseException as err:
            return f"{arg!r} is not a valid override ({_grammar_reason(str(err))}): " + _fix(
                arg, args[i + 1 :]
            )
    return _first_lines(text)


def _override_args(argv: list[str]) -> list[str]:
    """The overrides of a command line, without Hydra's flags and their values (`--cfg job`)."""
    from hydra._internal.utils import get_args_parser

    try:
        known, _ = get_args_parser().parse_known_args(argv)
    except SystemExit:  # a flag argparse rejects: keep what looks like an override
        return [a for a in argv if not a.startswith("-")]
    return list(known.overrides)


def _grammar_reason(text: str) -> str:
    keep = [
        line.strip()
        for line in text.splitlines()
        if line.strip()
        and not line.startswith(("See https://", "Error parsing override"))
        and line.strip() != "^"
    ]
    reason = " ".join(keep).replace("LexerNoViableAltException: ", "unexpected character in ")
    return reason or "Hydra's override grammar rejects it"


def _fix(arg: str, rest: list[str]) -> str:
    key, eq, value = arg.partition("=")
    if not eq:
        return (
            "an override is key=value; if the shell split one override at a space, quote it "
            "whole, e.g. 'sweep.seeds=[0, 1]'"
        )
    opened = value[:1]
    if opened in "[{" and not _balanced(value):
        joined = value
        for part in rest:  # the pieces a space split off, while the brackets stay open
            joined += " " + part
            if _balanced(joined):
                break
        closing = "]" if opened == "[" else "}"
        example = (
            f"{key}={joined}" if _balanced(joined) else f"{key}={value.rstrip(', ')}, ...{closing}"
        )
        what = "list" if opened == "[" else "mapping"
        return f"the {what} is cut short; quote the whole override: '{example}'"
    if opened == "[" and "=" in value:
        items = [x.strip().strip("'\"") for x in value[1:-1].split(",") if x.strip()]
        quoted = ",".join(f'"{x}"' for x in items)
        return (
            "a list element holding '=' needs its own quotes in Hydra's grammar, and the whole "
            f"override shell quotes: '{key}=[{quoted}]'"
        )
    if any(c in _RESERVED for c in value):
        inner = value.replace('"', '\\"')
        return (
            "a value holding characters of Hydra's grammar ($ ( ) ` [ ] { } , = quotes) goes in "
            f"double quotes, the whole override in single quotes: '{key}=\"{inner}\"'"
        )
    return f"quote the value: '{key}=\"{value}\"'"


def _balanced(text: str) -> bool:
    depth = 0
    for c in text:
        depth += c in "[{"
        depth -= c in "]}"
    return depth <= 0


# -- "did you mean": misspelled keys and options ----------------------------------------------


def _composition_message(text: str, config_name: str, overrides: list[str]) -> str:
    """A key (or group) this command does not have: the closest key or group it does have."""
    bad_key = re.search(r"Could not override '([^']+)'", text)
    if bad_key is None:
        bad_key = re.search(
            r"Could not (?:append to config|delete from config)\. .*'([^']+)'", text
        )
    if bad_key is None:
        return _first_lines(text)
    key = bad_key.group(1)
    value = _value_of(key, overrides)
    keys, groups = _known_keys(config_name, [o for o in overrides if not _is_override_of(o, key)])
    kind = "option group" if "No match in the defaults list" in text else "key"
    guess = _closest(key, keys | groups)
    what = f"{key}={value}" if value is not None else key
    if guess is not None:
        suggestion = f"{guess}={value if value is not None else '...'}"
        return f"{what}: this command has no {kind} {key!r}; did you mean {suggestion}?"
    hint = "`--cfg job` prints every key" + (", `--help` the groups" if groups else "")
    return f"{what}: this command has no key or option group {key!r} ({hint})"


def _missing_option(text: str) -> str:
    """``group=option`` naming no file of conf/<group>/: the closest option and all of them."""
    found = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
    options = re.findall(r"^\t(\S+)$", text, flags=re.MULTILINE)
    if found is None:
        return _first_lines(text)
    group, option = found.groups()
    guess = difflib.get_close_matches(option, options, n=1, cutoff=0.5)
    message = f"{group}={option}: no such option in conf/{group}/"
    if guess:
        message += f"; did you mean {group}={guess[0]}?"
    if options:
        message += f" (options: {', '.join(options)})"
    return message


def _is_override_of(override: str, key: str) -> bool:
    name = override.split("=", 1)[0].lstrip("+~")
    return name == key


def _value_of(key: str, overrides: list[str]) -> str | None:
    for o in overrides:
        if "=" in o and _is_override_of(o, key):
            return o.split("=", 1)[1]
    return None


def _closest(key: str, candidates: set[str]) -> str | None:
    """The candidate closest to `key`: first among the keys beside it (same parent), then all."""
    parent = key.rpartition(".")[0]
    siblings = [c for c in candidates if c.rpartition(".")[0] == parent]
    for pool in (siblings, sorted(candidates)):
        match = difflib.get_close_matches(key, pool, n=1, cutoff=0.6)
        if match:
            return match[0]
    return None


def _known_keys(config_name: str, overrides: list[str]) -> tuple[set[str], set[str]]:
    """Every dotted key of the composed config and every option group of its defaults list."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    clean = [o for o in overrides if not o.startswith("-")]
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=clean, return_hydra_config=True)
    except Exception:  # the other overrides may be wrong too: fall back to the plain config
        try:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                cfg = compose(config_name=config_name, return_hydra_config=True)
        except Exception:
            return set(), set()
    groups = {
        g for g in OmegaConf.to_container(cfg.hydra.runtime.choices) if not g.startswith("hydra")
    }
    with_hydra = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    return set(_dotted_keys(with_hydra)), groups


def _dotted_keys(node: Any, prefix: str = "") -> Iterator[str]:
    if not isinstance(node, DictConfig):
        return
    for key in node:
        name = f"{prefix}{key}"
        yield name
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            yield from _dotted_keys(child, f"{name}.")
