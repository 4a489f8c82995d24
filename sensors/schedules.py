"""Schedules: a daily refresh of the datasets that feed models, a weekly retrain of every model.

Both find their assets through the asset graph at each tick (models by their tag, datasets as
what lies upstream of them), so a new model or dataset is scheduled without editing a list. A
partitioned model gets one run per partition (per-silo partitions) or a run of its latest time
window; its backfills are launched from the UI like any partitioned asset's.
"""

from __future__ import annotations

import dagster as dg

from fed_assets.asset_graph import MODELS, datasets_feeding, model_keys

# 02:00 UTC: after the silos' nightly loads, before the working day in the EU.
DAILY_REFRESH_CRON = "0 2 * * *"
# Mondays 04:00 UTC: after Sunday's refresh, so the week starts on fresh models.
WEEKLY_RETRAIN_CRON = "0 4 * * 1"
# Run tag naming which schedule asked for a run.
SCHEDULE_TAG = "fed_assets/schedule"


def dataset_refresh_schedule(
    *,
    name: str = "daily_dataset_refresh",
    cron_schedule: str = DAILY_REFRESH_CRON,
    models: dg.AssetSelection = MODELS,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> dg.ScheduleDefinition:
    """Each day, materialise every dataset that feeds a model (with its quality gates)."""

    @dg.schedule(
        name=name,
        cron_schedule=cron_schedule,
        target=models.upstream().materializable() - models,
        default_status=default_status,
        description="Refresh every dataset that feeds a model (federated queries read the silos "
        "in place); the datasets' quality gates run with them.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        graph = context.repository_def.asset_graph
        return _by_partitions(graph, datasets_feeding(graph, models), name, context)

    return _schedule


def model_retrain_schedule(
    *,
    name: str = "weekly_model_retrain",
    cron_schedule: str = WEEKLY_RETRAIN_CRON,
    models: dg.AssetSelection = MODELS,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> dg.ScheduleDefinition:
    """Each week, retrain every model on its datasets as last materialised (unconditionally:
    the drift gate belongs to the datasets' runs, and this run does not include them)."""

    @dg.schedule(
        name=name,
        cron_schedule=cron_schedule,
        target=models,
        default_status=default_status,
        description="Retrain every model (one run per partition of a per-silo model).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        graph = context.repository_def.asset_graph
        return _by_partitions(graph, model_keys(graph, models), name, context)

    return _schedule


def _by_partitions(graph, keys, name: str, context) -> list[dg.RunRequest] | dg.SkipReason:
    """One run for the unpartitioned ``keys``, one per partition for each partitioned group."""
    if not keys:
        return dg.SkipReason("no assets to schedule: no model in the asset graph yet")
    stamp = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else ""
    tags = {SCHEDULE_TAG: name}
    groups: dict[object, list[dg.AssetKey]] = {}
    for key in keys:
        groups.setdefault(graph.get(key).partitions_def, []).append(key)
    requests = []
    for partitions, members in groups.items():
        if partitions is None:
            requests.append(
                dg.RunRequest(run_key=f"{name}:{stamp}", asset_selection=members, tags=tags)
            )
            continue
        if isinstance(partitions, dg.TimeWindowPartitionsDefinition):  # the latest window only
            last = partitions.get_last_partition_key(context.scheduled_execution_time)
            chosen = [last] if last else []
        else:  # per-silo (static or dynamic) partitions: every one
            chosen = partitions.get_partition_keys(dynamic_partitions_store=context.instance)
        for partition in chosen:
            requests.append(
                dg.RunRequest(
                    run_key=f"{name}:{stamp}:{','.join(k.to_user_string() for k in members)}:"
                    f"{partition}",
                    asset_selection=members,
                    partition_key=partition,
                    tags=tags,
                )
            )
    return requests
