"""Where a sweep's points run: each engine is a context manager giving a `submit(function, *args)` that returns a
concurrent.futures.Future, so runtime/sweep.py has one code path for both.

- the local pool: a ProcessPoolExecutor of `workers` processes (spawned, not forked: the parent has onnxruntime's
  threads running);
- Ray (`pip install 'undense[cluster]'`): the same function as a Ray task asking for POINT_CPUS CPUs, on a local
  Ray runtime (`auto`: the one running here, else one started for the sweep) or an existing cluster (its
  address); Ray's ObjectRef.future() is the Future.
"""
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager

from undense.errors import UndenseError

POINT_CPUS = 1  # Verilator, Yosys and nextpnr each run on one thread here


@contextmanager
def local_pool(workers: int) -> Iterator[Callable[..., Future]]:
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            yield pool.submit
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


@contextmanager
def ray_cluster(address: str) -> Iterator[Callable[..., Future]]:
    try:
        import ray
    except ImportError:
        raise UndenseError("--ray needs Ray, which is not installed: pip install 'undense[cluster]'") from None
    try:
        if address == "auto":
            try:
                ray.init(address="auto", log_to_driver=False)  # a Ray runtime already running here
            except ConnectionError:
                ray.init(log_to_driver=False)  # none: start one for this sweep
        else:
            ray.init(address=address, log_to_driver=False)
    except ConnectionError as error:
        raise UndenseError(f"--ray {address}: no Ray cluster answers there ({error}); start one with `ray start "
                           "--head` and give its address, or use --ray auto") from None
    tasks = {}

    def submit(function, *args) -> Future:
        if function not in tasks:
            tasks[function] = ray.remote(num_cpus=POINT_CPUS)(function)
        return tasks[function].remote(*args).future()
    try:
        yield submit
    finally:
        ray.shutdown()


def cluster_cpus() -> int:
    """CPUs of the Ray cluster the sweep is connected to: how many points it can run at once."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)) // POINT_CPUS)
