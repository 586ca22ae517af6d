"""Every name a run, a study, a pipeline or a report writes to the tracking store, defined once.

Tags, params and metrics are read back by reports, pipelines and studies: a literal repeated in two
modules is a rename waiting to break one of them.
"""

from __future__ import annotations


class M:
    """Metric keys (step = epoch)."""

    TRAIN_LOSS = "train/loss"
    TRAIN_ACC_NOISY = "train/acc_noisy"
    TRAIN_ACC_CLEAN = "train/acc_clean"
    TRAIN_MEMORISED = "train/memorised"  # flipped samples predicted as their wrong label
    TRAIN_CORRECTED = "train/corrected"  # flipped samples predicted as their true label
    VAL_LOSS = "val/loss"
    VAL_ACC = "val/acc"
    TEST_LOSS = "test/loss"
    TEST_ACC = "test/acc"
    LR = "lr"
    EPOCH_SECONDS = "time/epoch_s"
    IMAGES_PER_SECOND = "time/images_per_s"
    # end-of-run summary
    TEST_ACC_LAST = "test/acc_last"  # the paper's protocol
    TEST_ACC_CLASS = "test/acc_class"  # prefix: test/acc_class/<k>, class k's test accuracy at the last epoch
    TEST_ACC_BEST_VAL = "test/acc_best_val"  # test accuracy at the best validation epoch
    TEST_ACC_BEST = "test/acc_best"  # best epoch chosen on the test set: logged, never printed as a result
    BEST_TEST_EPOCH = "best_test_epoch"
    VAL_ACC_BEST = "val/acc_best"
    VAL_ACC_LAST = "val/acc_last"
    BEST_VAL_EPOCH = "best_val_epoch"
    SYSTEM_CPU = "system/cpu_utilization_percentage"  # MLflow's system metrics, sampled every interval
    # a study's parent run (step = trials done)
    STUDY_BEST_VAL_ACC = "study/best_val_acc"
    REFIT_TEST_ACC = "refit/test_acc"  # the best point retrained on the whole training set (step = its trial)

    @staticmethod
    def study_trials(state: str) -> str:
        """The parent run's count of trials in ``state`` (COMPLETE, PRUNED, FAIL): ``study/trials_complete``."""
        return f"study/trials_{state.lower()}"


class T:
    """Run tags."""

    DATASET = "dataset"
    MODEL = "model"
    LOSS = "loss"
    NOISE = "noise"
    SEED = "seed"
    FIDELITY = "fidelity"
    CONFIG_HASH = "config_hash"
    CODE_VERSION = "code_version"
    VAL_LABELS = "val_labels"
    PRECISION = "precision"
    DEVICE = "device"
    FAILURE_REASON = "failure_reason"
    PIPELINE = "pipeline"
    REPORT = "aplab.report"  # "1" on report runs: never a training run
    REPORT_METRIC = "aplab.report.metric"
    STUDY = "study"
    STUDY_ROLE = "study.role"  # "study" (the parent run), "trial" or "refit"
    TRIAL_NUMBER = "trial.number"
    TRIAL_STATE = "trial.state"  # RUNNING, COMPLETE, PRUNED or FAIL (Optuna's names)
    STACK_ID = "stack.id"  # runs trained together as one fused model (train.stack): its id, size, this run's slot
    STACK_SIZE = "stack.size"
    STACK_SLOT = "stack.slot"
    RUN_KEY = "aplab.run_key"  # a run folder's random key, in state.json before its tracked run exists: found again after a kill
    # MLflow's own
    RUN_NAME = "mlflow.runName"
    PARENT_RUN_ID = "mlflow.parentRunId"
    NOTE = "mlflow.note.content"
    EXPERIMENT_KIND = "mlflow.experimentKind"  # an experiment tag: which page MLflow's UI opens
    SOURCE_NAME = "mlflow.source.name"  # MLflow's documented system tags of a run's origin
    SOURCE_TYPE = "mlflow.source.type"
    USER = "mlflow.user"
    GIT_COMMIT = "mlflow.source.git.commit"
    DATASET_CONTEXT = "mlflow.data.context"  # a dataset input's tag: training, validation or test
    STUDY_STORAGE = "optuna.storage"
    STUDY_INCOMPLETE = "study.incomplete"  # the dead workers of a command that left trials undone
    # a study's parent run: what it searches, and its standing
    OPTUNA_STUDY = "optuna.study"
    STUDY_SPACE = "study.space"
    STUDY_OBJECTIVE = "study.objective"
    STUDY_SAMPLER = "study.sampler"
    STUDY_PRUNER = "study.pruner"
    STUDY_PARAMS = "study.params"
    STUDY_N_TRIALS = "study.n_trials"  # the budget (a grid: its points)
    STUDY_TRIALS = "study.trials"  # trials in the storage so far
    BEST_TRIAL = "best.trial"
    BEST_VAL_ACC = "best.val_acc"
    BEST_PARAM = "best."  # + a searched field: the best trial's value of it
    REFIT_RUN_ID = "refit.run_id"
    REFIT_TRIAL = "refit.trial"
    REFIT_FAILURE_REASON = "refit.failure_reason"
    REFIT_PARAM = "refit."  # + a searched field: the refit's value of it
    # a trial's child run
    TRIAL_VALUE = "trial.value"
    PRUNED = "pruned"  # "true" on a pruned trial's run
    PRUNED_AT_EPOCH = "pruned_at_epoch"
    PRUNE_REASON = "prune_reason"
    # where a run trained (scale-out)
    HOST = "host"
    GPU_INDEX = "gpu.index"  # the machine's GPU (its CUDA_VISIBLE_DEVICES index), not the cuda:N the run saw
    GPU_NAME = "gpu.name"
    CUDA_VISIBLE_DEVICES = "cuda_visible_devices"  # as given to the training process, when set
    WORLD_SIZE = "distributed.world_size"  # processes training the run (DistributedDataParallel); 1 alone
    BACKEND = "distributed.backend"  # nccl or gloo, for a distributed run
    SLURM_JOB_ID = "slurm.job_id"  # the Slurm job (an array's own id) that trained the run
    SLURM_TASK_ID = "slurm.task_id"  # its array task
    THREADS = "runtime.threads_used"  # torch's intra-op threads the run computed with (where it last trained)


#: Tags every training run carries: what a report groups by.
REQUIRED_RUN_TAGS = (T.DATASET, T.LOSS, T.NOISE, T.SEED)
#: The config fields behind those tags: the axes of a pipeline's matrix (in its order: dataset, noise,
#: loss, seed) and of a report's tables.
AXIS_FIELDS = ("data.name", "noise.spec", "loss.name", "runtime.seed")

#: Config fields that never change a run's results: left out of its identity (config hash) and never
#: used by reports to tell variants apart. Every field of these sections is included.
NON_RESULT_SECTIONS = ("tracking",)
NON_RESULT_FIELDS = ("data.data_dir", "data.download", "runtime.device", "runtime.eval_batch_size",
                     "runtime.compile", "runtime.nproc_per_node", "runtime.sync_bn", "runtime.decode",
                     "runtime.threads")

#: Params a run logs beside its config fields (facts of the realised data, not settings).
P_REALISED_NOISE_RATE = "noise.realised_rate"
P_TRAIN_SIZE = "data.train_size"
P_VAL_SIZE = "data.val_size"
P_HUMAN_LABELS = "noise.human_labels"  # the CIFAR-N label set of a human:* or human_like:* spec
P_HUMAN_FILE = "noise.human_file"
P_HUMAN_FILE_SHA256 = "noise.human_file_sha256"


#: Params of a report run.
P_REPORT_METRIC = "report.metric"
P_REPORT_RUNS = "report.runs"
P_REPORT_CELLS = "report.cells"


def run_label(cfg, readable: bool = False) -> str:
    """A run's label from its axes: ``digits-ce-none-s0``, the end of a study's default name; ``readable``:
    ``digits ce none seed 0``, how messages name a pipeline cell. (The run's name in the store, loss and seed
    first so the UI's truncation keeps them, is ``train.identity.run_name``.)

    ``cfg`` is a RunConfig (not imported: the config package imports this module).
    """
    parts = (cfg.data.name, cfg.loss.name, cfg.noise.spec)
    if readable:
        return " ".join((*parts, f"seed {cfg.runtime.seed}"))
    return "-".join((*parts, f"s{cfg.runtime.seed}"))


def report_experiment(experiment: str) -> str:
    """The experiment that holds the report runs of ``experiment``: beside it, never among its training runs."""
    return f"{experiment}-reports"


def affects_results(field: str) -> bool:
    """Whether a dotted config field can change a run's results."""
    return field.split(".")[0] not in NON_RESULT_SECTIONS and field not in NON_RESULT_FIELDS
