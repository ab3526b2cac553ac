import { join } from 'node:path';
import { loadModel } from '../../functions/commons/model/session';
import { BANDS, IMAGE_ELEMENTS } from '../../functions/commons/partitions/galaxy';
import { ROOT } from '../../local/paths';

/**
 * A session has read its inputs by the time run() returns (OnnxModel's contract), so the partition
 * reader may reuse a chunk's buffers while batches are in flight. onnxruntime-node starts a run on a
 * later turn (setImmediate) and reads its tensors then: the session must hand it copies.
 */
test('a batch whose buffers are overwritten right after run() is called still predicts from what it was given', async () => {
  const model = await loadModel(join(ROOT, 'model', 'default.onnx'), { intraOpThreads: 1 });
  try {
    const count = 8;
    const feeds = () => {
      const image = new Float32Array(count * IMAGE_ELEMENTS);
      for (let i = 0; i < image.length; i++) image[i] = Math.sin(i) * 2;
      const magnitude = Float32Array.from({ length: count * BANDS }, (_, i) => 15 + (i % 7));
      return { image: { data: image, dims: [count, 5, 32, 32] }, magnitude: { data: magnitude, dims: [count, BANDS] } };
    };
    const expected = (await model.run(feeds(), count)).redshift;
    const reused = feeds();
    const running = model.run(reused, count);
    // What the reader does when it moves to its next chunk: the same buffers, other objects.
    reused.image.data.fill(0);
    reused.magnitude.data.fill(30);
    const got = (await running).redshift;
    expect(Array.from(got)).toEqual(Array.from(expected));
    // The control: the overwritten inputs do predict something else.
    const other = (await model.run(reused, count)).redshift;
    expect(Array.from(other)).not.toEqual(Array.from(expected));
  } finally {
    await model.release();
  }
});
