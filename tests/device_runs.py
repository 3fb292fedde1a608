"""Run task scripts with --devices 2 and then --devices 1 in this one process, under the backend named by
KERAS_BACKEND, for the data-parallel test (tests/test_devices.py). Usage: python device_runs.py jobs.json

Each job: script (tasks/<task>.py), flags, output (a folder: d2/ and d1/ are made in it). The 2 virtual CPU
devices are made when the backend starts (the first run), and serve the second run's --devices 1 unused.

    python device_runs.py jobs.json --processes 2 --process-id I --coordinator HOST:PORT

runs each job once instead, as process I of a JAX run over 2 processes (one CPU device each), into p2/.
"""

import importlib.util
import json
import sys


def main(jobs_path, *process_flags):
    for job in json.load(open(jobs_path)):
        spec = importlib.util.spec_from_file_location("task_script", job["script"])
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)
        if process_flags:
            script.main([*job["flags"], *process_flags, "--output-dir", f"{job['output']}/p2"])
            continue
        for count in (2, 1):
            script.main([*job["flags"], "--devices", str(count), "--output-dir", f"{job['output']}/d{count}"])


if __name__ == "__main__":
    main(*sys.argv[1:])
