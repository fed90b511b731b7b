import { Collection, MongoClient } from 'mongodb';
import { DataKey, KeyStore } from './key-store.port';
import { dataKeyId, newWrappedKey, unwrapKey } from './key-wrapping';

interface DataKeyDocument {
  _id: string;
  firmId: string;
  userId: string;
  generation: number;
  wrapped: string;
  createdAt: Date;
}

/** Data keys in the `data_keys` collection; the first upsert of a key id wins. */
export class MongoKeyStore implements KeyStore {
  private constructor(
    private readonly client: MongoClient,
    private readonly keys: Collection<DataKeyDocument>,
    private readonly masterKey: Buffer,
  ) {}

  static async connect(url: string, masterKey: Buffer): Promise<MongoKeyStore> {
    const client = new MongoClient(url);
    await client.connect();
    const keys = client.db().collection<DataKeyDocument>('data_keys');
    await keys.createIndex({ firmId: 1, userId: 1, generation: 1 });
    return new MongoKeyStore(client, keys, masterKey);
  }

  async dataKeyFor(firmId: string, userId: string, generation: number): Promise<DataKey> {
    const keyId = dataKeyId(firmId, userId, generation);
    const document = await this.upsert(keyId, firmId, userId, generation).catch(
      async (error: unknown) => {
        // Two upserts of one new key id race; the loser reads the winner's key.
        if ((error as { code?: number }).code !== 11000) throw error;
        return this.keys.findOne({ _id: keyId });
      },
    );
    if (!document) throw new Error(`Data key ${keyId} could not be stored`);
    return { keyId, key: unwrapKey(this.masterKey, keyId, document.wrapped) };
  }

  private upsert(keyId: string, firmId: string, userId: string, generation: number) {
    return this.keys.findOneAndUpdate(
      { _id: keyId },
      {
        $setOnInsert: {
          firmId,
          userId,
          generation,
          wrapped: newWrappedKey(this.masterKey, keyId),
          createdAt: new Date(),
        },
      },
      { upsert: true, returnDocument: 'after' },
    );
  }

  async dataKey(keyId: string): Promise<Buffer | undefined> {
    const document = await this.keys.findOne({ _id: keyId });
    return document ? unwrapKey(this.masterKey, keyId, document.wrapped) : undefined;
  }

  async destroyKeysBelow(firmId: string, userId: string, generation: number): Promise<number> {
    const { deletedCount } = await this.keys.deleteMany({
      firmId,
      userId,
      generation: { $lt: generation },
    });
    return deletedCount;
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
