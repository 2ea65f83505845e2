"""`--ray [ADDRESS]`: analyze and preprocess on a Ray cluster (or a local Ray instance).

Ray actors, not Ray Data's `map_batches`: each actor loads the model and detector once and takes
whole files, one at a time, from a driver that hands the largest waiting file to whichever worker
is free (longest-first greedy: the work is balanced by size and the run's tail is one short file,
not one long one). The driver gets each file's Result as it finishes and writes it into the same
outputs a single-machine run writes (emotions.csv/.jsonl/.json, plots), so `--resume` trusts the
same record after a killed driver. Ray Data would add pyarrow and a block format for nested,
variable-length results, reorder and batch rows by its own rules, and hide which file failed;
actors keep one file's failure one line and the rest of the batch going.

A worker that dies (killed, out of memory, a node lost) is restarted by Ray and its file given
once more; a file that kills its worker twice is reported as failed. Preprocessing workers write
cache entries themselves (as the local process pool does), so the cache must be on storage every
node sees, which is also where training reads it from; the driver holds the cache's run lock
and rebuilds its index. Ray is imported only here, only when asked for.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import EmoliteError
from .options import optional

CPUS_PER_WORKER = 1   # one decode thread overlaps one inference thread (analyze.prefetch)
RETRIES = 1           # a file whose worker died is given once more
MAX_RESTARTS = 4      # per worker, before it is left out of the pool
LOCAL = "local"       # --ray with no address: a Ray instance on this machine


def _ray():
    try:
        import ray
    except ImportError:
        raise EmoliteError("--ray needs Ray: pip install 'emolite[ray]' (on every node of the cluster)") from None
    return ray


@contextmanager
def connect(address: str | None = None) -> Iterator[Any]:
    """ray.init(address) (None or 'local': a local instance, or the cluster RAY_ADDRESS names);
    a session already started in this process (e.g. by the caller) is used as it is."""
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=None if address in (None, "", LOCAL) else address, include_dashboard=False,
                     logging_level="ERROR", log_to_driver=False, configure_logging=False)
        except Exception as e:  # a wrong address, a cluster of another Ray version
            raise EmoliteError(f"cannot start or reach the Ray cluster {address or '(local)'} "
                               f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _size(path: str | os.PathLike) -> float:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0.0


def worker_count(ray, workers: int | None, cpus: int = CPUS_PER_WORKER) -> int:
    """`workers`, or as many as the cluster's CPUs hold."""
    workers = optional("--workers", workers, 1, 100_000, integer=True)
    return workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus)


def stream(ray, actors: list, jobs: list[tuple[Any, float]], call: Callable, died: Callable) -> Iterator[tuple[Any, Any]]:
    """(job, answer) as each finishes. `jobs` are (job, size): the largest waiting job goes to the
    next free actor. A job whose actor died is given again (RETRIES); after that its answer is
    died(job, error). An actor that died more than MAX_RESTARTS times gets no more jobs."""
    waiting = [j for j, _ in sorted(jobs, key=lambda js: -js[1])]
    tries = {id(j): 0 for j in waiting}
    deaths = {id(a): 0 for a in actors}
    free, flight = list(actors), {}
    try:
        while waiting or flight:
            while free and waiting:
                a, j = free.pop(0), waiting.pop(0)
                flight[call(a, j)] = (j, a)
            if not flight:   # every worker gone: the rest fail, one line each
                for j in waiting:
                    yield j, died(j, "no Ray worker left")
                return
            (ref,), _ = ray.wait(list(flight), num_returns=1)
            j, a = flight.pop(ref)
            try:
                answer = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.ObjectLostError) as e:
                deaths[id(a)] += 1
                if deaths[id(a)] <= MAX_RESTARTS and _revived(ray, a):
                    free.append(a)
                tries[id(j)] += 1
                if tries[id(j)] <= RETRIES:
                    waiting.insert(0, j)
                else:
                    yield j, died(j, f"its Ray worker died {tries[id(j)]} times ({type(e).__name__})")
                continue
            free.append(a)
            yield j, answer
    finally:
        for a in actors:
            ray.kill(a, no_restart=True)


def _revived(ray, actor, timeout: float = 120.0) -> bool:
    """Wait for Ray to restart a dead worker (calls meanwhile fail at once); False if it cannot."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            return ray.get(actor.ready.remote(), timeout=timeout) is None
        except ray.exceptions.ActorUnavailableError:   # restarting
            time.sleep(0.2)
        except Exception:
            return False
    return False


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    try:
        import cv2
        cv2.setNumThreads(n)
    except ImportError:
        pass


class AnalyzeWorker:
    """One Ray worker of `analyze`: the model and detector load once, then whole files."""

    def __init__(self, model: str | None, device: str, threads: int, kill_after: int = 0):
        from .inference import load_model

        _threads(threads)
        self.error, self.model, self.files, self.kill_after = None, None, 0, kill_after
        try:
            self.model = load_model(model, device=device, threads=threads)
        except EmoliteError as e:
            self.error = str(e)

    def ready(self) -> str | None:
        return self.error

    def analyze(self, path: str, kw: dict):
        """(Result, None) or (None, the one-line reason)."""
        from contextlib import nullcontext

        from . import media
        from .analyze import analyze_file

        kw = dict(kw)
        pixels = kw.pop("max_pixels", None)   # --max-pixels: the decode limit holds on the worker
        self.files += 1
        if self.kill_after and self.files > self.kill_after:   # test hook: die once, like a lost node
            import ray

            if not ray.get_runtime_context().was_current_actor_reconstructed:
                os._exit(1)
        try:
            with media.decode_limits(pixels=pixels) if pixels else nullcontext():
                return analyze_file(self.model, path, progress=False, **kw), None
        except EmoliteError as e:
            return None, str(e)
        except Exception as e:  # an unforeseen decoder problem in one file must not stop the batch
            return None, f"unexpected {type(e).__name__}: {e}"


def _actors(ray, cls, n: int, args: tuple, cpus: int) -> list:
    """n actors of cls, each restartable; their start-up errors (e.g. a bad model file) raised once."""
    remote = ray.remote(num_cpus=cpus, max_restarts=MAX_RESTARTS, max_task_retries=0)(cls)
    actors = [remote.remote(*args) for _ in range(n)]
    try:
        errors = {e for e in ray.get([a.ready.remote() for a in actors]) if e}
    except Exception:
        for a in actors:
            ray.kill(a, no_restart=True)
        raise
    if errors:
        for a in actors:
            ray.kill(a, no_restart=True)
        raise EmoliteError(sorted(errors)[0])
    return actors


def analyze_files(files: list[Path], model: str | None = None, address: str | None = None,
                  workers: int | None = None, device: str = "cpu", threads: int = CPUS_PER_WORKER,
                  _kill_after: int = 0, **kw) -> Iterator[tuple[Path, Any, str | None]]:
    """(file, Result or None, failure reason or None) as each file finishes on the cluster.
    `kw` goes to analyze.analyze_file (window, hop, people, max_people)."""
    if not files:
        return
    with connect(address) as ray:
        n = min(worker_count(ray, workers, threads), len(files))
        actors = _actors(ray, AnalyzeWorker, n, (None if model is None else str(model), device, threads,
                                                 _kill_after), threads)
        call = lambda a, f: a.analyze.remote(str(f), kw)  # noqa: E731
        died = lambda f, why: (None, why)  # noqa: E731
        for f, (r, err) in stream(ray, actors, [(f, _size(f)) for f in files], call, died):
            yield f, r, err


class PreprocessWorker:
    """One Ray worker of `preprocess`: one detector, then items written straight into the cache."""

    def __init__(self, init: Callable, process: Callable, cfg: dict, cdir: str, threads: int):
        _threads(threads)
        init(cfg, threads)
        self.process_item, self.cfg, self.cdir = process, cfg, cdir
        self.error = None if Path(cdir).is_dir() else \
            f"{cdir}: the cache folder is not visible on Ray node {os.uname().nodename}; put -o on storage every node mounts"

    def ready(self) -> str | None:
        return self.error

    def process(self, item) -> dict:
        return self.process_item(item, self.cdir, self.cfg)


def preprocess_items(jobs: list[tuple], init: Callable, process: Callable, address: str | None = None,
                     workers: int | None = None, threads: int = CPUS_PER_WORKER) -> Iterator[dict]:
    """preprocess's per-item results (process(item, cdir, cfg) dicts) from Ray workers, as they
    finish; jobs are preprocess's (item, cache dir, config) triples, init(cfg, threads) its
    per-process set-up (passed in, so that this module never imports preprocess)."""
    if not jobs:
        return
    cfg, cdir = jobs[0][2], str(Path(jobs[0][1]).resolve())
    with connect(address) as ray:
        n = min(worker_count(ray, workers, threads), len(jobs))
        actors = _actors(ray, PreprocessWorker, n, (init, process, cfg, cdir, threads), threads)
        call = lambda a, it: a.process.remote(it)  # noqa: E731
        died = lambda it, why: {"key": it.key, "status": "failed", "reason": f"{it.path}: {why}",  # noqa: E731
                                "windows": 0, "no_face": 0}
        sizes = [(it, (it.end - it.start) * 1e6 if it.end and it.start is not None else _size(it.path))
                 for it, _, _ in jobs]
        for _, res in stream(ray, actors, sizes, call, died):
            yield res


def run_analyze(specs: list[str], model: str | None = None, out: str | None = None, plot: bool = False,
                window: float | None = None, hop: float | None = None, quiet: bool = False, print_fn=print,
                resume: bool = False, people: bool = False, max_people: int | None = None,
                address: str | None = None, workers: int | None = None, device: str = "cpu",
                shard: str | None = None, max_pixels: int | None = None, _kill_after: int = 0) -> dict:
    """analyze.run on a Ray cluster: the same outputs (rows in input order once the run ends),
    the same summary, plus `seconds_to_first_result` and `wall_seconds`."""
    from . import analyze as A
    from .fsio import atomic_write_text, check_writable
    from .merge import write_csv
    from .outputs import Outputs, plot_timeline
    from .people import MAX_PEOPLE
    from .shard import write_manifest

    A.check_window(window, hop)
    t0 = time.time()
    files, problems = A.expand_inputs(specs)
    files, manifest = A.shard_inputs(specs, files, shard)
    o = Outputs(out, resume)
    write_manifest(o.record, manifest)
    if plot and o.dir is None:
        check_writable(".")
    failed, by_path, first = [], {}, None
    for p, r in problems:
        A._fail(failed, print_fn, p, r)
    todo = []
    for f in files:
        if os.path.abspath(f) in o.done:
            by_path[str(f)] = o.done[os.path.abspath(f)]
            if not quiet:
                print_fn(f"{f}: finished in the earlier run (--resume)")
        else:
            todo.append(f)
    kw = dict(window=window, hop=hop, people=people, max_people=max_people or MAX_PEOPLE, max_pixels=max_pixels)
    try:
        for f, r, err in analyze_files(todo, model, address, workers, device, _kill_after=_kill_after, **kw):
            first = first or time.time() - t0
            if r is None:
                A._fail(failed, print_fn, str(f), err)
                continue
            if o.sink is not None:
                for w in r.windows:
                    o.sink.write(A.window_row(str(f), w, people))
            by_path[str(f)] = r.to_dict()
            if not quiet:
                print_fn(A.format_table(r))
            if plot:
                try:
                    plot_timeline(r, (o.dir or Path(".")) / f"{Path(f).name}.png")
                except EmoliteError as e:
                    A._fail(failed, print_fn, str(f), str(e))
            e = o.finished(r)
            if e is not None:
                A._fail(failed, print_fn, str(o.record), str(e))
    finally:
        o.close()
    results = [by_path[str(f)] for f in files if str(f) in by_path]   # input order, as analyze.run
    if o.csv is not None and (o.sink is None or o.sink.error is None):
        try:
            write_csv(o.csv, results, people)   # the streamed rows, now in input order
        except EmoliteError as e:
            A._fail(failed, print_fn, str(o.csv), str(e))
    elif o.sink is not None:
        A._fail(failed, print_fn, str(o.csv), str(o.sink.error))
    summary = {"files": len(files) + len(problems), "analyzed": len(results), "failed": failed, "results": results}
    if o.json is not None:
        try:
            atomic_write_text(o.json, json.dumps(summary, indent=1))
        except EmoliteError as e:
            A._fail(failed, print_fn, str(o.json), str(e))
    if o.dir is not None and not quiet:
        print_fn(f"wrote {', '.join(str(p) for p in (o.csv, o.json, o.record) if p is not None)}")
    return {**summary, "seconds_to_first_result": first, "wall_seconds": time.time() - t0}
