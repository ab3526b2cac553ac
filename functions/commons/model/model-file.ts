import { fileSource } from '../tensors/byte-source';
import { cardFromMetadata, CardError, checkCardAgainstGraph, parseCard, type ModelCard } from './card';
import { readOnnxSignature, type OnnxSignature } from './onnx-signature';

/** A model file's signature and card: `cardText` when given (the card beside it), else the one in its metadata. */
export async function readModelFile(path: string, cardText?: string): Promise<{ card: ModelCard; signature: OnnxSignature }> {
  const source = await fileSource(path);
  try {
    const signature = await readOnnxSignature(source);
    const card = cardText !== undefined ? parseCard(cardText, `${path}'s card`) : cardFromMetadata(signature, path);
    if (!card) throw new CardError(`${path}: no card beside it and none in its metadata (cai.card)`);
    checkCardAgainstGraph(card, signature, path);
    return { card, signature };
  } finally {
    await source.close();
  }
}
