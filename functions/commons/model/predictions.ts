/**
 * Predictions as CSV, one row per object: `partition,row,redshift_pred[,redshift_true]`.
 * Values are float32 written in the shortest form that reads back to the same float32.
 */
export function predictionsCsv(partition: string, predicted: Float32Array, truth?: Float32Array): string {
  const quoted = /[",\n]/.test(partition) ? `"${partition.replace(/"/g, '""')}"` : partition;
  const lines = [truth ? 'partition,row,redshift_pred,redshift_true' : 'partition,row,redshift_pred'];
  for (let i = 0; i < predicted.length; i++) {
    const row = `${quoted},${i},${shortestFloat32(predicted[i])}`;
    lines.push(truth ? `${row},${shortestFloat32(truth[i])}` : row);
  }
  return `${lines.join('\n')}\n`;
}

function shortestFloat32(value: number): string {
  for (let digits = 6; digits < 9; digits++) {
    const text = value.toPrecision(digits);
    if (Math.fround(Number(text)) === value) return String(Number(text));
  }
  return String(value);
}
