/** Where a run's outputs go, under the payload's result_path in the control bucket. */
export const outputKeys = (resultPath: string) => {
  const base = resultPath.replace(/\/+$/, '');
  return {
    manifest: `${base}/manifest.json`,
    rank: (rank: number) => `${base}/ranks/${rank}.json`,
    predictions: (rank: number) => `${base}/predictions/${rank}.csv`,
    attempt: (rank: number, id: string) => `${base}/attempts/${rank}-${id}.json`,
    attempts: `${base}/attempts/`,
    combined: `${base}/combined_data.json`,
    summary: `${base}/summary.json`,
  };
};
