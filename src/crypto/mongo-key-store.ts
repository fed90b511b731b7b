import { AnyBulkWriteOperation, Collection, MongoClient } from 'mongodb';
import { DataKey, KeyStore } from './key-store.port';
import {
  dataKeyId,
  MasterKeyAdoption,
  masterKeyMismatch,
  MasterKeyPlan,
  MasterKeyRing,
} from './key-wrapping';

interface DataKeyDocument {
  _id: string;
  firmId: string;
  userId: string;
  generation: number;
  wrapped: string;
  /** The check value of the master key that wrapped it; missing on documents from before. */
  masterKeyCheck?: string;
  createdAt: Date;
}

export interface MongoKeyStoreOptions {
  /** MFA_MASTER_KEY_PREVIOUS during a rotation. */
  previousMasterKey?: Buffer | null;
  /** The database; by default the one the URL names. */
  database?: string;
}

/** Data keys in the `data_keys` collection; the first upsert of a key id wins. */
export class MongoKeyStore implements KeyStore {
  private readonly ring: MasterKeyRing;

  private constructor(
    private readonly client: MongoClient,
    private readonly keys: Collection<DataKeyDocument>,
    masterKey: Buffer,
    previousMasterKey: Buffer | null,
  ) {
    this.ring = new MasterKeyRing(masterKey, previousMasterKey);
  }

  static async connect(
    url: string,
    masterKey: Buffer,
    options: MongoKeyStoreOptions = {},
  ): Promise<MongoKeyStore> {
    const client = new MongoClient(url);
    await client.connect();
    const keys = client.db(options.database).collection<DataKeyDocument>('data_keys');
    await keys.createIndex({ firmId: 1, userId: 1, generation: 1 });
    return new MongoKeyStore(client, keys, masterKey, options.previousMasterKey ?? null);
  }

  async adoptMasterKey(): Promise<MasterKeyAdoption> {
    const dataKeys = await this.keys.countDocuments({});
    // $ne also matches documents without the field (stored before check values).
    const others = await this.keys
      .find(
        { masterKeyCheck: { $ne: this.ring.currentCheck } },
        { projection: { _id: 1, wrapped: 1, masterKeyCheck: 1 } },
      )
      .toArray();
    const plan = this.ring.plan(
      others.map((document) => ({
        keyId: document._id,
        wrapped: document.wrapped,
        masterKeyCheck: document.masterKeyCheck ?? null,
      })),
    );
    // Checked before any write: a refused start changes nothing.
    if (plan.unopenable.length > 0) {
      throw masterKeyMismatch({ ...plan, dataKeys }, this.ring, 'the data_keys collection');
    }
    const fromPrevious = plan.updates.filter((update) => update.to.wrapped !== update.from.wrapped);
    const tagOnly = plan.updates.filter((update) => update.to.wrapped === update.from.wrapped);
    const rewritten = await this.writeBack(fromPrevious);
    await this.writeBack(tagOnly);
    return { dataKeys, rewrapped: rewritten, previousConfigured: this.ring.hasPrevious };
  }

  /**
   * Each update applies only while the document still holds the wrapping this
   * process read: when two processes adopt at once, the first write wins and
   * the other's finds nothing to change (both wrap the same data key with the
   * same master key). A key destroyed meanwhile stays destroyed (no upsert).
   */
  private async writeBack(updates: MasterKeyPlan['updates']): Promise<number> {
    if (updates.length === 0) return 0;
    const operations: AnyBulkWriteOperation<DataKeyDocument>[] = updates.map((update) => ({
      updateOne: {
        filter: { _id: update.keyId, wrapped: update.from.wrapped },
        update: { $set: { wrapped: update.to.wrapped, masterKeyCheck: update.to.masterKeyCheck } },
      },
    }));
    const result = await this.keys.bulkWrite(operations, { ordered: false });
    return result.modifiedCount;
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
    return { keyId, key: this.unwrap(document) };
  }

  private upsert(keyId: string, firmId: string, userId: string, generation: number) {
    const fresh = this.ring.newWrappedKey(keyId);
    return this.keys.findOneAndUpdate(
      { _id: keyId },
      {
        $setOnInsert: {
          firmId,
          userId,
          generation,
          wrapped: fresh.wrapped,
          masterKeyCheck: fresh.masterKeyCheck,
          createdAt: new Date(),
        },
      },
      { upsert: true, returnDocument: 'after' },
    );
  }

  async dataKey(keyId: string): Promise<Buffer | undefined> {
    const document = await this.keys.findOne({ _id: keyId });
    return document ? this.unwrap(document) : undefined;
  }

  private unwrap(document: DataKeyDocument): Buffer {
    return this.ring.unwrap({
      keyId: document._id,
      wrapped: document.wrapped,
      masterKeyCheck: document.masterKeyCheck ?? null,
    });
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
