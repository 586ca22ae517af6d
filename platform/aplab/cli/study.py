"""``aplab study``: run (or resume) an Optuna study of a search space, every trial a child MLflow run."""

from __future__ import annotations

import argparse

from .flags import Subcommands, add_config_arguments, add_executor_arguments, add_worker_arguments, config_from_args, worker_request


def cmd_study(args: argparse.Namespace) -> int:
    """Build the base config from the train flags, run the study, print its outcome."""
    from ..executors import executor
    from ..study.prepare import StudyOptions, check_options

    request = worker_request(args)
    runner = executor(args.executor)
    runner.check(request)
    options = StudyOptions(space_path=args.space, base=config_from_args(args), study_name=args.study_name,
                           storage=args.storage, workers=1 if args.workers is None else args.workers,
                           refit=args.refit, objective=args.objective, n_trials=args.n_trials,
                           progress=not args.no_progress)
    checked = check_options(options)  # argument errors answer before torch is imported to count the GPUs
    report = runner.run_study(options, checked, request)
    if report is None:
        return 0
    _print_report(report)
    return report.exit_code


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


def register(commands: Subcommands) -> None:
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
