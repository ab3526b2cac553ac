/**
 * The records of a zip of stored (uncompressed) entries, written over a buffer whose entries' data is
 * already in place: each local header (its extra field padding the data to where it lies), the central
 * directory, the end record. Both of CAI's archive writers use it: torch's (.pt, its data aligned to
 * 64 bytes by a field torch calls `FB`) and numpy's (.npz).
 */

export const ZIP_LOCAL_HEADER = 30;
export const ZIP_CENTRAL_HEADER = 46;
export const ZIP_END_RECORD = 22;
/** Zip32's largest size or offset. */
export const MAX_ZIP32 = 0xffffffff;

export interface StoredZipEntry {
  name: Uint8Array;
  headerOffset: number;
  /** Where its data starts: the local header's extra field fills the bytes between. */
  dataOffset: number;
  size: number;
  crc: number;
}

/** What differs between the writers: the extra field's id, the general-purpose flags, the DOS date. */
export interface ZipStyle {
  paddingFieldId: number;
  /** 0x0800: names are UTF-8. */
  flags: number;
  dosDate: number;
}

/** Writes the headers, the directory at `directoryOffset` and the end record; returns the archive's length. */
export function writeStoredZipRecords(bytes: Uint8Array, entries: StoredZipEntry[], directoryOffset: number, style: ZipStyle): number {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Fields from "version needed" to the name's length, the same in the local header and the directory.
  const common = (at: number, e: StoredZipEntry) => {
    dv.setUint16(at, 20, true); // version needed: 2.0
    dv.setUint16(at + 2, style.flags, true);
    dv.setUint16(at + 4, 0, true); // stored
    dv.setUint16(at + 8, style.dosDate, true);
    dv.setUint32(at + 10, e.crc, true);
    dv.setUint32(at + 14, e.size, true);
    dv.setUint32(at + 18, e.size, true);
    dv.setUint16(at + 22, e.name.length, true);
  };
  let at = directoryOffset;
  for (const e of entries) {
    const extraAt = e.headerOffset + ZIP_LOCAL_HEADER + e.name.length;
    const extra = e.dataOffset - extraAt;
    dv.setUint32(e.headerOffset, 0x04034b50, true);
    common(e.headerOffset + 4, e);
    dv.setUint16(e.headerOffset + 28, extra, true);
    bytes.set(e.name, e.headerOffset + ZIP_LOCAL_HEADER);
    if (extra > 0) {
      dv.setUint16(extraAt, style.paddingFieldId, true);
      dv.setUint16(extraAt + 2, extra - 4, true);
    }
    dv.setUint32(at, 0x02014b50, true);
    dv.setUint16(at + 4, 20, true); // made by
    common(at + 6, e);
    dv.setUint32(at + 42, e.headerOffset, true);
    bytes.set(e.name, at + ZIP_CENTRAL_HEADER);
    at += ZIP_CENTRAL_HEADER + e.name.length;
  }
  dv.setUint32(at, 0x06054b50, true);
  dv.setUint16(at + 8, entries.length, true);
  dv.setUint16(at + 10, entries.length, true);
  dv.setUint32(at + 12, at - directoryOffset, true);
  dv.setUint32(at + 16, directoryOffset, true);
  return at + ZIP_END_RECORD;
}
