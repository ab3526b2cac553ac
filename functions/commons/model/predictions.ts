import type { CardOutput } from './card';

/** One output's predictions over a partition, as runPartition gives them, and its labels if any. */
export interface OutputColumn {
  name: string;
  output: CardOutput;
  values: Float32Array;
  width: number;
  labels?: Float32Array;
}

const quote = (text: string) => (/[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);

/** Each output's columns, by task: a value; a class and its probability; a score. A label column follows when the partition has labels. */
function header(column: OutputColumn): string[] {
  const { name, output, labels } = column;
  const label = labels ? [`${name}_true`] : [];
  if (output.task === 'classification') return [`${name}_class`, `${name}_probability`, ...label];
  if (output.task === 'score') return [`${name}_score`, ...(labels ? [`${name}_label`] : [])];
  return [`${name}_pred`, ...label];
}

function cells(column: OutputColumn, row: number): string[] {
  const { output, values, width, labels } = column;
  const label = labels ? [shortestFloat32(labels[row])] : [];
  if (output.task === 'classification') {
    const scores = values.subarray(row * width, (row + 1) * width);
    if (!scores.every(Number.isFinite)) return ['', 'NaN', ...label.map((l) => output.classes[Number(l)] ?? l)];
    let best = 0;
    for (let c = 1; c < width; c++) if (scores[c] > scores[best]) best = c;
    // The top class's probability: of a softmax when the model gives logits.
    const p = output.scores === 'logits' ? 1 / scores.reduce((s, v) => s + Math.exp(v - scores[best]), 0) : scores[best];
    return [quote(output.classes[best]), shortestFloat32(Math.fround(p)), ...label.map((l) => quote(output.classes[Number(l)] ?? l))];
  }
  return [shortestFloat32(values[row]), ...label];
}

/**
 * Predictions as CSV, one row per object: `partition,row`, then each output's columns. For CAI's
 * redshift model that is `partition,row,redshift_pred[,redshift_true]`, as the prototype wrote it.
 * Values are float32 written in the shortest form that reads back to the same float32.
 */
export function predictionsCsv(partition: string, columns: OutputColumn[], rows: number, firstRow = 0): string {
  const lines = [['partition', 'row', ...columns.flatMap(header)].join(',')];
  const key = quote(partition);
  // A row range of a file names its objects by their rows in the file.
  for (let i = 0; i < rows; i++) lines.push([key, String(firstRow + i), ...columns.flatMap((c) => cells(c, i))].join(','));
  return `${lines.join('\n')}\n`;
}

function shortestFloat32(value: number): string {
  for (let digits = 6; digits < 9; digits++) {
    const text = value.toPrecision(digits);
    if (Math.fround(Number(text)) === value) return String(Number(text));
  }
  return String(value);
}
