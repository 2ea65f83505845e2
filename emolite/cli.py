"""`emolite` command line: thin wrappers that parse, call one function, print.

User errors (EmoliteError) print as one line and exit 1; a bad option value (OptionError:
out of range, not finite, unknown name) prints one line naming the option and exits 2, like
argparse's own usage errors. Values are checked by the functions called (the API boundary);
options only the CLI has are checked here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import options as O
from .errors import EmoliteError
from .media import MAX_PIXELS as DEFAULT_PIXELS
from .people import MAX_PEOPLE, MAX_PEOPLE_LIMIT

# Ranges of the options only the CLI has (the others are checked by the functions they go to).
SAMPLES = (1, 1000)              # info: frames sampled for faces
DEMO_SECONDS = (0.5, 600.0)      # demo, bench: length of the generated clip
PORTS = (0, 65535)
SERVE_WORKERS = (1, 256)
MAX_SESSIONS = (1, 4096)
MAX_UPLOAD_MB = (1, 4096)
MAX_MESSAGE_KB = (1, 65536)
MAX_FRAME_PIXELS = (64 * 64, 7680 * 4320)
MAX_PIXELS = (64 * 64, 1 << 34)  # analyze, info, preprocess: --max-pixels (the default is media.MAX_PIXELS)
PIXELS_HELP = f"largest image or video frame to decode, width x height (default {DEFAULT_PIXELS})"
# Training recipes of the shipped model: command -> (emolite.recipes module, help). Their
# options are the recipe module's own (`add_arguments`), parsed by `run_recipe`.
RECIPES = {"train-face": ("face", "train the default model's face expert on FER2013 + face pool + CK+ (DATA folder)"),
           "train-default": ("default", "train the whole default model from the real data (DATA folder), resumable")}


def pixel_limit(args):
    """--max-pixels checked, as the `media.decode_limits` block every file is read in."""
    from . import media

    value = O.optional("--max-pixels", getattr(args, "max_pixels", None), *MAX_PIXELS, integer=True)
    return media.decode_limits(pixels=int(value) if value is not None else DEFAULT_PIXELS)


def cmd_info(args) -> int:
    """Print what each file holds, and whether faces are found in a few sampled frames."""
    samples = O.number("--samples", args.samples, *SAMPLES, integer=True)
    with pixel_limit(args):
        from .faces import get_detector

        det = None if args.no_faces else get_detector()
        status = 0
        for path in args.files:
            try:
                info = _info(path, det, samples)
            except EmoliteError as e:
                print(f"error: {e}", file=sys.stderr)
                status = 1
                continue
            print(json.dumps(info, indent=None if args.json else 1))
    return status


def _info(path: str, det, samples: int) -> dict:
    """One file's probe, and faces in up to `samples` frames of it."""
    from . import media

    info = media.probe(path)
    if det is not None and info.get("has_video", info["kind"] == "image"):
        found, sampled = [], 0
        # Short windows and a stop after `samples` frames: a file that claims no duration
        # (or a wrong one) is never held whole.
        fps = 1.0 / max(info["duration"] / samples, 0.2) if info["duration"] else 1.0
        for w in media.iter_windows(path, fps=fps, window=media.WINDOW, use_audio=False, max_side=None):
            for t, frame in zip(w.times, w.frames):
                if sampled >= samples:
                    break
                sampled += 1
                faces = det(frame)
                found.append({"t": round(float(t), 2), "faces": len(faces),
                              "box": [round(float(v)) for v in faces[0].box] if faces else None})
            if sampled >= samples:
                break
        info["faces"] = {"sampled_frames": sampled, "frames_with_face": sum(f["faces"] > 0 for f in found),
                         "samples": found[:samples]}
    return info


def cmd_preprocess(args) -> int:
    """`emolite preprocess`: exit 2 when any file failed."""
    from . import preprocess

    root = Path(args.root)
    dataset = args.dataset or ("manifest" if root.suffix.lower() == ".csv" else "files")
    overrides = {"fps": args.fps, "face_size": args.face_size, "context_size": args.context_size,
                 "align": args.align or None, "detector": args.detector, "margin": args.margin}
    pixels = O.optional("--max-pixels", args.max_pixels, *MAX_PIXELS, integer=True)
    summary = preprocess.run(dataset, root, args.out, workers=args.workers, limit=args.limit,
                             progress=not args.quiet, max_pixels=pixels, ray=args.ray, shard=args.shard, **overrides)
    print(preprocess.format_summary(summary))
    return 0 if summary["failed"] == 0 else 2


def cmd_demo(args) -> int:
    """Write the built-in example clip and analyse it: the timeline table, CSV/JSON and plot."""
    from .demo import make_clip

    O.number("--seconds", args.seconds, *DEMO_SECONDS)
    out = Path(args.out)
    clip = make_clip(out / "demo.mp4", seconds=args.seconds)
    print(f"wrote {clip}")
    args.inputs, args.plot, args.window, args.hop, args.quiet = [str(clip)], True, None, None, False
    args.out, args.people, args.max_people, args.max_pixels = str(out), False, MAX_PEOPLE, None
    return cmd_analyze(args)


def cmd_analyze(args) -> int:
    """`emolite analyze`: exit 2 when any file failed."""
    from . import analyze
    from .inference import load_model

    analyze.check_window(args.window, args.hop)   # before the model loads
    max_people = int(O.number("--max-people", args.max_people, 1, MAX_PEOPLE_LIMIT, integer=True))
    ray, shard = getattr(args, "ray", None), getattr(args, "shard", None)
    limit = pixel_limit(args)
    if ray is not None:   # the workers load the model: this process only writes the outputs
        from .cluster import run_analyze

        summary = run_analyze(args.inputs, args.model, out=args.out, plot=args.plot, window=args.window, hop=args.hop,
                              quiet=args.quiet, resume=args.resume, people=args.people, max_people=max_people,
                              address=ray, workers=args.workers, device=O.device(args.device), shard=shard,
                              max_pixels=O.optional("--max-pixels", args.max_pixels, *MAX_PIXELS, integer=True))
    else:
        if getattr(args, "workers", None) is not None:
            raise O.OptionError("--workers needs --ray (split a job without Ray with --shard K/N)")
        model = load_model(args.model, device=args.device)
        with limit:
            summary = analyze.run(args.inputs, model, out=args.out, plot=args.plot, window=args.window,
                                  hop=args.hop, progress=not args.quiet, quiet=args.quiet,
                                  resume=getattr(args, "resume", False), people=args.people, max_people=max_people,
                                  shard=shard)
    if summary["failed"]:
        print(f"{len(summary['failed'])} of {summary['files']} inputs failed", file=sys.stderr)
    return 0 if not summary["failed"] else 2


def cmd_merge(args) -> int:
    """`emolite merge`: exit 2 when a file failed or no shard has it."""
    from .merge import merge

    s = merge(args.dirs, args.out)
    for f in s["failed"]:
        print(f"failed: {f['path']}: {f['reason']}", file=sys.stderr)
    for k in s["missing"][:20]:
        print(f"missing: {k} (in no shard's finished files: run its shard again with --resume)", file=sys.stderr)
    if len(s["missing"]) > 20:
        print(f"missing: ... {len(s['missing']) - 20} more (all in {Path(args.out) / 'emotions.json'})", file=sys.stderr)
    print(f"merged {len(args.dirs)} folders: {s['analyzed']} of {s['files']} files into {args.out}")
    return 0 if not (s["failed"] or s["missing"]) else 2


def _cluster_options(s: argparse.ArgumentParser) -> None:
    """--ray and --shard (emolite.cluster, emolite.shard), shared by analyze and preprocess."""
    s.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run on a Ray cluster (ray://host:10001, host:6379 or auto; no address: a local Ray instance)")
    s.add_argument("--shard", metavar="K/N", help="only the K-th of N deterministic parts of the inputs "
                                                   "(SLURM arrays, indexed jobs); combine with `emolite merge`")


def cmd_train(args) -> int:
    """`emolite train`."""
    from . import train
    from .config import load_config

    overrides = list(args.set or [])
    if args.init:
        overrides.append(f"model.init={json.dumps(args.init)}")
    if args.plugin:
        overrides.append(f"plugins={json.dumps(args.plugin)}")
    cfg = load_config(args.config, overrides)
    result = train.run(cfg, resume=args.resume)
    print(json.dumps({k: v for k, v in result.items() if k != "classes"}, indent=1))
    return 0


def cmd_evaluate(args) -> int:
    """`emolite evaluate`."""
    from . import evaluate

    res = evaluate.run(args.model, args.cache, split=args.split, out_dir=args.out, dataset=args.dataset or "")
    keep = ("n", "accuracy", "f1_weighted", "f1_macro", "uar", "dropped_labels", "absent_classes")
    print(json.dumps({k: res[k] for k in keep if k in res}, indent=1))
    return 0


def cmd_export(args) -> int:
    """`emolite export`: prints the report (parity figures) as JSON."""
    from .export import export

    report = export(args.model, args.out, quantize=args.int8, check=True)
    print(json.dumps(report, indent=1))
    return 0


def cmd_export_web(args) -> int:
    """`emolite export-web DIR`: the on-device page as a static folder; prints what it wrote."""
    from .web import export_web

    report = export_web(args.dir, args.model)
    print(json.dumps({k: v for k, v in report.items() if k != "files"}, indent=1))
    print(f"serve it with: python -m http.server -d {args.dir}   (then open http://localhost:8000/)", file=sys.stderr)
    return 0


def cmd_bench(args) -> int:
    """`emolite bench`: prints the figures as JSON."""
    from . import bench

    O.number("--seconds", args.seconds, *DEMO_SECONDS)
    print(json.dumps(bench.run(args.model, args.seconds), indent=1))
    return 0


def cmd_serve(args) -> int:
    """`emolite serve`."""
    from .serve.app import Limits, serve

    O.number("--port", args.port, *PORTS, integer=True)
    O.number("--workers", args.workers, *SERVE_WORKERS, integer=True)
    O.optional("--max-sessions", args.max_sessions, *MAX_SESSIONS, integer=True)
    O.optional("--max-sessions-per-address", args.max_sessions_per_address, *MAX_SESSIONS, integer=True)
    O.optional("--max-people", args.max_people, 1, MAX_PEOPLE, integer=True)   # the live follower moves at most MAX_PEOPLE
    O.optional("--max-upload-mb", args.max_upload_mb, *MAX_UPLOAD_MB, integer=True)
    O.optional("--max-message-kb", args.max_message_kb, *MAX_MESSAGE_KB, integer=True)
    O.optional("--max-frame-pixels", args.max_frame_pixels, *MAX_FRAME_PIXELS, integer=True)
    O.device(args.device)
    given = {"max_sessions": args.max_sessions, "max_sessions_per_address": args.max_sessions_per_address,
             "max_frame_pixels": args.max_frame_pixels, "max_people": args.max_people,
             "max_message": args.max_message_kb and args.max_message_kb << 10,
             "max_upload": args.max_upload_mb and args.max_upload_mb << 20}
    limits = Limits(**{k: v for k, v in given.items() if v is not None})
    serve(args.model, host=args.host, port=args.port, device=args.device, workers=args.workers, limits=limits,
          allow_origins=args.allow_origin or (), idle_timeout=args.idle_timeout)
    return 0


def _add_model_commands(sub) -> None:
    """train, evaluate and export: the commands that make and convert models."""
    s = sub.add_parser("train", help="train a model on a preprocessed cache (Lightning; CPU, GPU, DDP)")
    s.add_argument("--config", help="TOML config (see configs/); defaults otherwise")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. model.fusion=attention")
    s.add_argument("--init", help="fine-tune from this checkpoint (new head for the new label set)")
    s.add_argument("--plugin", action="append", help="module or .py file that registers datasets/models/losses")
    s.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="accuracy, F1, UAR, per-class scores, confusion matrix (JSON + PNG)")
    s.add_argument("--model", required=True, help="checkpoint (.pt)")
    s.add_argument("--cache", required=True, help="preprocessed cache folder")
    s.add_argument("--split", default="test", help="test | dev | train | all")
    s.add_argument("--dataset", help="only this dataset's entries")
    s.add_argument("-o", "--out", help="output folder (default: beside the checkpoint)")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("export", help="export a model to ONNX (opset 17), optionally int8-quantized")
    s.add_argument("--model", help="checkpoint (.pt, or a run's Lightning .ckpt) (default: the packaged model)")
    s.add_argument("-o", "--out", default="emolite.onnx")
    s.add_argument("--int8", action="store_true", help="also write an int8 dynamically quantized copy")
    s.set_defaults(func=cmd_export)


def _add_input_commands(sub) -> None:
    """`info` and `preprocess`: the commands that read media before any model."""
    s = sub.add_parser("info", help="show streams, duration, fps, sample rate and faces of media files")
    s.add_argument("files", nargs="+")
    s.add_argument("--samples", type=int, default=5, help="frames sampled for face detection")
    s.add_argument("--no-faces", action="store_true", help="skip face detection")
    s.add_argument("--json", action="store_true", help="one JSON line per file")
    s.add_argument("--max-pixels", type=int, help=PIXELS_HELP)
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("preprocess", help="build the compact training cache from a dataset or a folder of media")
    s.add_argument("root", help="dataset folder, a manifest CSV, or a folder/file of media")
    s.add_argument("-o", "--out", required=True, help="cache root folder")
    s.add_argument("--dataset", help="meld | cremad | ravdess | manifest | folder | files (default: manifest for a "
                                     ".csv, else files = every media file, unlabelled)")
    s.add_argument("--workers", type=int, help="processes (default: all cores)")
    s.add_argument("--fps", type=float)
    s.add_argument("--face-size", type=int)
    s.add_argument("--context-size", type=int)
    s.add_argument("--margin", type=float, help="face crop margin (crop side = (1 + margin) × box side; default 0.25)")
    s.add_argument("--align", action="store_true", help="align faces on their 5 landmarks")
    s.add_argument("--detector", help="retinaface | whole | none")
    s.add_argument("--limit", type=int, help="only the first N items (a quick look)")
    s.add_argument("--max-pixels", type=int, help=PIXELS_HELP)
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _cluster_options(s)
    s.set_defaults(func=cmd_preprocess)


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand."""
    p = argparse.ArgumentParser(prog="emolite", description="Multimodal (face + context + voice) emotion recognition.")
    sub = p.add_subparsers(dest="command", required=True)

    _add_input_commands(sub)

    s = sub.add_parser("demo", help="write the built-in example clip and analyse it")
    s.add_argument("-o", "--out", default="emolite-demo", help="output folder")
    s.add_argument("--seconds", type=float, default=6.0)
    s.add_argument("--model", help="checkpoint (.pt) or ONNX file (default: the packaged model)")
    s.add_argument("--device", default="cpu", help="cpu | cuda")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("analyze", help="emotions over time for videos, audio files or images")
    s.add_argument("inputs", nargs="+", help="files, folders or globs")
    s.add_argument("-o", "--out", help="folder for emotions.csv + emotions.json (+ plots), or a .csv/.json file")
    s.add_argument("--plot", action="store_true", help="PNG of probabilities over time per file")
    s.add_argument("--model", help="checkpoint (.pt) or ONNX file (default: the packaged model)")
    s.add_argument("--device", default="cpu", help="cpu | cuda")
    s.add_argument("--window", type=float, help="window seconds (default: the model's, 3)")
    s.add_argument("--hop", type=float, help="hop seconds (default: the model's, 1)")
    s.add_argument("--people", action="store_true",
                   help="track every face: one timeline per person, the voice fused into whoever speaks")
    s.add_argument("--max-people", type=int, default=MAX_PEOPLE, help=f"faces tracked at once (default {MAX_PEOPLE})")
    s.add_argument("-q", "--quiet", action="store_true", help="no table, no progress bar")
    s.add_argument("--resume", action="store_true",
                   help="keep the files an earlier (killed) run into the same -o finished; analyse the rest")
    s.add_argument("--max-pixels", type=int, help=PIXELS_HELP)
    _cluster_options(s)
    s.add_argument("--workers", type=int, help="with --ray: Ray workers (default: one per CPU of the cluster)")
    s.set_defaults(func=cmd_analyze)

    s = sub.add_parser("merge", help="combine the output folders of `analyze --shard K/N` runs into one")
    s.add_argument("dirs", nargs="+", help="the shards' -o folders")
    s.add_argument("-o", "--out", required=True, help="folder for the merged emotions.csv/.jsonl/.json")
    s.set_defaults(func=cmd_merge)

    _add_model_commands(sub)

    s = sub.add_parser("export-web", help="the on-device live page as a static folder (runtime, scripts, ONNX graphs)")
    s.add_argument("dir", help="output folder (serve it with any static file server)")
    s.add_argument("--model", help="checkpoint (.pt) or `emolite export` ONNX file (default: the packaged model)")
    s.set_defaults(func=cmd_export_web)

    s = sub.add_parser("bench", help="params, multiply-adds, ms per clip, analyze x real time (JSON)")
    s.add_argument("--model", help="checkpoint or ONNX (default: the packaged model)")
    s.add_argument("--seconds", type=float, default=20.0, help="length of the generated clip for analyze speed")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("serve", help="live emotions from a browser's webcam + microphone (page, WebSocket, HTTP API)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="port to bind (0: a free one, printed)")
    s.add_argument("--model", help="checkpoint (.pt) or ONNX file (default: the packaged model)")
    s.add_argument("--device", default="cpu", help="cpu | cuda")
    s.add_argument("--workers", type=int, default=2, help="inference threads (about the number of cores)")
    s.add_argument("--max-sessions", type=int, help="concurrent browser clients (default 16)")
    s.add_argument("--max-sessions-per-address", type=int,
                   help="of them from one client address (default 4; raise it behind a proxy or for load tests)")
    s.add_argument("--max-people", type=int, help=f"faces tracked and labelled per client, 1-{MAX_PEOPLE} (default {MAX_PEOPLE})")
    s.add_argument("--max-upload-mb", type=int, help="largest uploaded file (default 50)")
    s.add_argument("--max-message-kb", type=int, help="largest WebSocket message (default 1024)")
    s.add_argument("--max-frame-pixels", type=int, help="largest webcam frame, width x height (default 1280x720)")
    s.add_argument("--allow-origin", action="append", metavar="URL",
                   help="another page origin allowed to use the server (e.g. https://example.org); repeatable")
    s.add_argument("--idle-timeout", type=float, help="seconds a WebSocket client that sends no frames or audio keeps its slot (pings do not count; default 30)")
    s.set_defaults(func=cmd_serve)
    _add_recipes(sub)
    return p


def _add_recipes(sub) -> None:
    """The recipe commands, listed for --help; main() hands their options to run_recipe."""
    for name, (_, text) in RECIPES.items():
        sub.add_parser(name, help=text + f" (options: emolite {name} --help)", add_help=False)


def run_recipe(command: str, argv: list[str]) -> int:
    """`emolite train-face ...` / `emolite train-default ...`: the recipe's own parser and run."""
    import importlib

    mod = importlib.import_module(f".recipes.{RECIPES[command][0]}", __package__)
    ap = argparse.ArgumentParser(prog=f"emolite {command}", description=RECIPES[command][1])
    result = mod.run(mod.add_arguments(ap).parse_args(argv))
    if isinstance(result, dict):
        print(json.dumps(result, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: a user error (EmoliteError) prints one line and returns 1 (2 for a bad option
    value); returns the exit code."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv and argv[0] in RECIPES:   # before the main parser: the recipe parses its own options
        args = argparse.Namespace(func=lambda _: run_recipe(argv[0], argv[1:]))
    else:
        args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except O.OptionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except EmoliteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; finished entries are kept, run again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
