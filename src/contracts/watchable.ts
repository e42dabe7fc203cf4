/**
 * What MonitoringStack can watch: each watchable construct says what it is, and the monitor
 * dispatches on that instead of guessing from the properties it happens to have.
 */

/** A GpuCluster, a TrainingPipeline or a ModelEndpoint (created here or imported). */
export type WatchKind = 'gpu-cluster' | 'training-pipeline' | 'model-endpoint';

export interface IWatchable {
  /** What MonitoringStack watches this construct as. */
  readonly watchKind: WatchKind;
}
