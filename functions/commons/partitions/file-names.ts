/** The names of files a run lists, by extension; the content (tensor-files.ts) decides how each is read. */
export const TENSOR_FILE_SUFFIXES = ['.pt', '.pth', '.h5', '.hdf5', '.hdf', '.fits', '.fit', '.fts', '.parquet', '.pq', '.npy', '.npz'];
export const isTensorFileName = (key: string) => TENSOR_FILE_SUFFIXES.some((suffix) => key.toLowerCase().endsWith(suffix));
/** The kinds of file CAI reads, for messages. */
export const TENSOR_FILE_KINDS = '.pt, .h5/.hdf5, .fits, .parquet, .npy or .npz';
