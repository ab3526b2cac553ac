/**
 * Where a run's outputs go: under the payload's result_path, in a folder of the run's own
 * (<result_path>/<runId>/), so a run reads and writes only its own objects and a re-run of the same
 * payload is a new run beside the first. The prototype's <result_path>/combined_data.json is kept,
 * as the latest finished run's copy, so notebooks that read it still find it.
 */
export const outputKeys = (resultPath: string, runId: string) => {
  const parent = resultPath.replace(/\/+$/, '');
  const base = `${parent}/${runId}`;
  return {
    prefix: `${base}/`,
    manifest: `${base}/manifest.json`,
    rank: (rank: number) => `${base}/ranks/${rank}.json`,
    ranks: `${base}/ranks/`,
    predictions: (rank: number) => `${base}/predictions/${rank}.csv`,
    predictionsFolder: `${base}/predictions/`,
    attempt: (rank: number, id: string) => `${base}/attempts/${rank}-${id}.json`,
    attempts: `${base}/attempts/`,
    combined: `${base}/combined_data.json`,
    latestCombined: `${parent}/combined_data.json`,
    summary: `${base}/summary.json`,
  };
};
