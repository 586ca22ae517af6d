"""``aplab study``: run (or resume) an Optuna study of a search space, every trial a child MLflow run."""

from __future__ import annotations

import argparse

from .flags import add_config_arguments, config_from_args
from .scale_flags import add_executor_arguments, add_worker_arguments


def cmd_study(args: argparse.Namespace) -> int:
    """Build the base config from the train flags, run the study, print its outcome."""
    from dataclasses import replace

    from ..scale.gpus import gpu_plan, parse_gpus
    from ..study.runner import StudyOptions, check_options, run_study

    gpus = parse_gpus(args.gpus)
    options = StudyOptions(space_path=args.space, base=config_from_args(args), study_name=args.study_name,
                           storage=args.storage, workers=1 if args.workers is None else args.workers,
                           refit=args.refit, objective=args.objective, n_trials=args.n_trials,
                           progress=not args.no_progress)
    checked = check_options(options)  # argument errors answer before torch is imported to count the GPUs
    if args.executor == "slurm":
        report = _study_on_slurm(args, options, checked)
        if report is None:
            return 0
    elif args.wait:
        from ..errors import ConfigError

        raise ConfigError("--wait", True, "only with --executor slurm (a local study always waits)")
    else:
        plan = gpu_plan(gpus, args.runs_per_gpu, args.workers,  # bad GPUs: exit 2 before anything runs
                        gpus_per_run=checked[1].runtime.nproc_per_node)  # a distributed trial: a group of GPUs
        options = replace(options, workers=plan.workers, gpus=plan.gpus)
        report = run_study(options, checked=checked)  # the space's points are resolved once, not twice
    _print_report(report)
    return report.exit_code


def _study_on_slurm(args: argparse.Namespace, options, checked):
    """Submit --workers Slurm tasks that share the study's storage; with --wait, follow them and summarise
    (the report), else print the job id and return None."""
    import sys

    from ..scale.slurm import follow, job_of, slurm_options
    from ..study.runner import finish_study, submit_study

    slurm = slurm_options(args)
    slurm.check_fits(checked[1].runtime.nproc_per_node)
    job, study, tracker, task_ids, logs = submit_study(options, slurm, checked)
    print(f"study {job.context.study_name}: submitted Slurm job array {job_of(task_ids[0])} "
          f"({options.workers} worker(s))")
    print(f"logs: {logs}")
    if not args.wait:
        print(f"parent run: {job.context.parent_run_id}  storage: {job.storage_url}")
        return None
    follow(task_ids, f"study {job.context.study_name}", options.progress, sys.stderr)
    return finish_study(job, study, tracker, options, [])


def _print_report(report) -> None:
    states = ", ".join(f"{n} {state.lower()}" for state, n in sorted(report.counts.items()))
    print(f"study {report.job.context.study_name}: {states or 'no trials'}"
          + ("" if report.done else " (not finished: re-run the same command to resume)"))
    if report.best is not None:
        params = "  ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in report.best["params"].items())
        print(f"best: trial {report.best['trial']}  val/acc {100 * report.best['value']:.2f}%  {params}")
    if report.refit_test_acc is not None:
        print(f"refit on the full noisy training set: test/acc {100 * report.refit_test_acc:.2f}%")
    resume = "re-run the same command to resume" if not report.done else "every trial is done"
    for line in report.dead_workers:
        print(f"aplab: {line}; {resume}")
    if report.refit_error:
        print(f"aplab: {report.refit_error}; re-run the same command to retry it")
    print(f"parent run: {report.job.context.parent_run_id}  storage: {report.job.storage_url}")


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``study`` sub-command (called by ``aplab.cli``)."""
    parser = commands.add_parser("study", help="an Optuna study (grid or TPE) over config fields; "
                                 "every trial a child MLflow run", description=__doc__.replace("``", ""))
    parser.add_argument("--space", required=True, help="search space file, e.g. search_spaces/apl_paper_grid.yaml")
    parser.add_argument("--study-name", help="study name (default: <space>-<dataset>-<loss>-<noise>-s<seed>)")
    parser.add_argument("--storage", help="Optuna storage: a journal file path or postgresql+psycopg://... "
                        "(default $APLAB_OPTUNA_STORAGE, else optuna.journal beside the tracking store)")
    add_worker_arguments(parser, "worker processes on this host (with --executor slurm: Slurm tasks)")
    parser.add_argument("--n-trials", type=int, help="trial budget of a sampled (non-grid) space")
    parser.add_argument("--objective", default="last",
                        help="last: val/acc of the final epoch (default); best: of the best epoch")
    parser.add_argument("--refit", action="store_true",
                        help="retrain the best configuration on the full noisy training set; log its test accuracy")
    add_executor_arguments(parser, "worker")
    add_config_arguments(parser)
    parser.set_defaults(handler=cmd_study)
