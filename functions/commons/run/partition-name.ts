import type { PartitionObject } from './contracts';

/** How a partition is named in records, failures and predictions: its key, and its rows when it is a range of a file. */
export const partitionName = (p: PartitionObject): string => (p.rows ? `${p.key}#rows=${p.rows.start}-${p.rows.end}` : p.key);
