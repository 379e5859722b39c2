// Conversation storage: Dexie over IndexedDB, called from Python (adapters/dexie_store.py).
//
// Owns the database schema and its versions. Every function returns a promise that
// rejects only with a real Error (name kept: "ConstraintError", "QuotaExceededError",
// "OpenFailedError", …): Dexie's own errors are not `Error`s to Pyodide, and a rejection
// with a non-Error hangs Python's await forever. Transactions live here, in JS, because
// an `async def` body would commit early.
// Values in and out are plain JSON-like objects; timestamps are epoch milliseconds.
// After each successful write the other tabs are told what changed (tab-sync.js).

import Dexie from "../vendor/dexie/dexie.mjs";
import { announce } from "./tab-sync.js";

export { heldReplyLocks, holdReplyLock, onDataChange, replyLockReleased } from "./tab-sync.js";

export const DB_NAME = "localchat";

// Schema versions, oldest first. To change the schema, append a version with its
// `stores` and an `upgrade(tx)` that rewrites old records; never edit a published one.
// Dexie keeps existing data across versions; upgrades must never delete conversations.
const SCHEMA = [
  {
    version: 1,
    stores: {
      conversations: "id, updatedAt",
      messages: "id, conversationId, [conversationId+createdAt]",
    },
  },
  {
    // v2: the Download Manager's queue survives reloads. Adds a table; no record changes.
    version: 2,
    stores: {
      downloads: "key",
    },
  },
];

export const SCHEMA_VERSION = SCHEMA[SCHEMA.length - 1].version;

/** Turn anything thrown or rejected into a real Error, keeping its name and message. */
export function toError(value) {
  if (value instanceof Error && Object.prototype.toString.call(value) === "[object Error]") {
    return value;
  }
  const name = (value && value.name) || "StorageError";
  const inner = value && value.inner;
  let message = (value && value.message) || String(value);
  if (inner && inner.message && !message.includes(inner.message)) {
    message += ` (${inner.name || "cause"}: ${inner.message})`;
  }
  const err = new Error(message);
  err.name = name;
  return err;
}

/**
 * `work` (a promise, or a function returning one) with every failure, synchronous ones
 * included (a closed store throws at once), as a rejected promise of a real Error.
 */
function guard(work) {
  let promise;
  try {
    promise = Promise.resolve(typeof work === "function" ? work() : work);
  } catch (err) {
    return Promise.reject(toError(err));
  }
  return promise.catch((err) => {
    throw toError(err);
  });
}

/** `work`'s promise; once it succeeds, the other tabs get each of `notices`. */
function announced(work, ...notices) {
  return guard(work).then((value) => {
    for (const notice of notices) announce(notice);
    return value;
  });
}

function conversationsChanged(ids) {
  return { kind: "conversations", ids };
}

function messagesChanged(conversationId, ids) {
  return { kind: "messages", conversationId, ids };
}

/** The name of the failure of a write into a conversation that no longer exists. */
export const CONVERSATION_DELETED = "ConversationDeletedError";

function conversationDeleted(id) {
  const err = new Error(`The conversation ${id} no longer exists (deleted in another tab).`);
  err.name = CONVERSATION_DELETED;
  return err;
}

let db = null;
let closedError = null; // why the connection was given up (versionchange), once it was

function database() {
  if (closedError !== null) throw closedError;
  if (db === null) {
    const error = new Error("The conversation store is not open.");
    error.name = "StoreNotOpenError";
    throw error;
  }
  return db;
}

function announceStore(type) {
  document.dispatchEvent(new CustomEvent(`localchat:${type}`));
}

function refusalError(verdict) {
  const err = new Error("This browser refuses to store data for this site " +
                        `(${verdict.name}: ${verdict.message})`);
  err.name = "StorageRefusedError";
  return err;
}

/**
 * boot.js's storage check (window.localchat.storage), which also sees `indexedDB.open`
 * failing asynchronously: a "StorageRefusedError" if it found storage refused, else
 * null. `wait`: wait for the check (else only a finished check counts).
 */
async function storageRefusal(wait) {
  const boot = globalThis.localchat || {};
  let verdict = boot.storageVerdict;
  if (!verdict && wait && boot.storage) verdict = await boot.storage;
  return verdict && !verdict.usable ? refusalError(verdict) : null;
}

/**
 * Open (and, if needed, upgrade) the database. Resolves to {version}.
 *
 * When the browser refuses storage it fails with "StorageRefusedError" (or the browser's
 * own error, if the storage check didn't see the refusal). Every other outcome is
 * announced on `document` (boot.js shows the notices):
 * - `localchat:store-blocked`: the upgrade waits for another tab that holds an older
 *   version open; the open goes on waiting, and completes by itself once it closes;
 * - `localchat:store-open` / `localchat:store-failed`: the open has finished (after a
 *   wait, too), or failed (Python explains why);
 * - `localchat:store-closed`: another tab opens a newer version: this connection is
 *   closed at once (so that tab is not blocked), and every later call fails with
 *   "VersionChangeError".
 */
let opening = null; // the first open()'s promise: later calls share it

export function open() {
  if (opening === null) opening = openOnce();
  return opening;
}

function openOnce() {
  return guard((async () => {
    if (db !== null) return { version: db.verno };
    // Not waiting for the storage check: an upgrade blocked by another tab is to be seen
    // (and explained) at once. A refusal already known is reported as such.
    const known = await storageRefusal(false);
    if (known !== null) throw known;
    // Read now, not when Dexie was imported: after a refusal, boot.js gives PyScript a
    // memory-only stand-in as `indexedDB`, which must never hold conversations.
    const factory = typeof indexedDB === "undefined" ? null : indexedDB;
    if (factory === null) {
      throw (await storageRefusal(true)) ?? Object.assign(
        new Error("IndexedDB is not available in this browser window."),
        { name: "MissingAPIError" });
    }
    const instance = new Dexie(DB_NAME, { indexedDB: factory, IDBKeyRange });
    for (const step of SCHEMA) {
      const v = instance.version(step.version).stores(step.stores);
      if (step.upgrade) v.upgrade(step.upgrade);
    }
    instance.on("blocked", () => announceStore("store-blocked"));
    // Another tab opens a newer version: let go at once, and tell the page. (Dexie's
    // own handler also closes, but would reopen on the next call, which then fails
    // with VersionError or blocks the other tab again.)
    instance.on("versionchange", () => {
      instance.close();
      const err = new Error("Another tab opened a newer version of LocalChat's database, " +
                            "so this tab closed its connection.");
      err.name = "VersionChangeError";
      closedError = err;
      announceStore("store-closed");
      return false;
    });
    try {
      await instance.open();
    } catch (err) {
      announceStore("store-failed");
      throw (await storageRefusal(true)) ?? err;
    }
    db = instance;
    announceStore("store-open");
    return { version: instance.verno };
  })());
}

// The latest time taken as real (end of year 9999), as core/conversation.py.
const LATEST_TIME_MS = 253402300799999;

/** A stored time for sorting: anything not plausible (a string, NaN, negative, after
 * year 9999) sorts as oldest, as the core decodes it. */
function sortTime(value) {
  return typeof value === "number" && value >= 0 && value <= LATEST_TIME_MS
    ? value : -Infinity;
}

/**
 * Every conversation record, newest first (records are returned as stored). Read from
 * the table, not the updatedAt index: an index leaves out every record whose updatedAt
 * is not a valid key (missing, NaN, true…), and nothing stored may be hidden.
 */
export function listConversations() {
  return guard(() => database().conversations.toArray().then((records) =>
    records.sort((a, b) => (sortTime(b.updatedAt) - sortTime(a.updatedAt)) || 0)));
}

export function getConversation(id) {
  return guard(() => database().conversations.get(id).then((c) => c ?? null));
}

export function getMessage(id) {
  return guard(() => database().messages.get(id).then((m) => m ?? null));
}

/**
 * Messages of one conversation, in key order (the core sorts them by time). Read from
 * the conversationId index, not [conversationId+createdAt]: that one leaves out every
 * message whose createdAt is not a valid key.
 */
export function getMessages(conversationId) {
  return guard(() =>
    database().messages.where("conversationId").equals(conversationId).toArray());
}

/** Insert a new conversation; fails with ConstraintError if the id exists. */
export function addConversation(conversation) {
  return announced(() => database().conversations.add(conversation),
    conversationsChanged([conversation.id]));
}

/** Change some fields of a conversation without touching the others. */
export function updateConversation(id, changes) {
  return announced(() => database().conversations.update(id, changes),
    conversationsChanged([id]));
}

/**
 * Store a message (insert, or with `replace` insert or overwrite: a reply as it grows)
 * and, if asked, set its conversation's updatedAt, in one transaction that first checks
 * that the conversation still exists: a message is never stored without its
 * conversation (another tab may have deleted it); that fails with CONVERSATION_DELETED.
 */
// The fields the app writes; a stored message's other fields (and a createdAt the app
// left out because it couldn't read it) are kept when the app overwrites the message.
const MESSAGE_FIELDS = new Set(["id", "conversationId", "role", "content", "status",
                                "model", "error"]);

function keepingUnknownFields(stored, message) {
  if (!stored) return message;
  const merged = { ...message };
  for (const [name, value] of Object.entries(stored)) {
    if (!(name in merged) && !MESSAGE_FIELDS.has(name)) merged[name] = value;
  }
  return merged;
}

function storeMessage(message, touchUpdatedAt, replace) {
  const touch = touchUpdatedAt !== undefined && touchUpdatedAt !== null;
  const notices = [messagesChanged(message.conversationId, [message.id])];
  if (touch) notices.push(conversationsChanged([message.conversationId]));
  return announced(() => {
    const d = database();
    return d.transaction("rw", d.conversations, d.messages, async () => {
      const owner = await d.conversations.get(message.conversationId);
      if (!owner) throw conversationDeleted(message.conversationId);
      if (replace) {
        await d.messages.put(keepingUnknownFields(await d.messages.get(message.id), message));
      } else {
        await d.messages.add(message);
      }
      if (touch) {
        await d.conversations.update(message.conversationId, { updatedAt: touchUpdatedAt });
      }
    });
  }, ...notices);
}

/** Insert a message and set its conversation's updatedAt, in one transaction. */
export function addMessage(message, touchUpdatedAt) {
  return storeMessage(message, touchUpdatedAt, false);
}

/** Insert or overwrite a message (a streaming reply saved as it grows, or finished). */
export function putMessage(message, touchUpdatedAt) {
  return storeMessage(message, touchUpdatedAt, true);
}

/**
 * putMessage for a page that is going away (pagehide). Nothing after the handler returns
 * runs in a page being unloaded (no request callback, no Dexie step), and a transaction
 * not committed by then is lost: so one raw IndexedDB transaction puts the message and
 * commits at once. It can't wait to read the conversation first, so the caller checks
 * that it still exists as far as this tab knows (another tab's delete notice arrives
 * within milliseconds). Nobody waits for it; a failure is dropped (the last periodic
 * save stays). The other tabs are told at once: a transaction they start after the
 * notice is scheduled after this one (IndexedDB orders transactions of overlapping
 * scope by creation, across connections), so they read what it stores.
 */
export function putMessageNow(message) {
  try {
    const tx = database().backendDB().transaction(["messages"], "readwrite");
    tx.objectStore("messages").put(message);
    tx.onerror = (event) => event.preventDefault();
    if (tx.commit) tx.commit();
  } catch (_err) {
    return; // The store is closed or gone: the last periodic save stays.
  }
  announce(messagesChanged(message.conversationId, [message.id]));
}

/** Change some fields of a message (e.g. its content when a reply finishes). */
export function updateMessage(id, changes) {
  return announced(() => database().messages.update(id, changes),
    messagesChanged(changes.conversationId, [id]));
}

/** Delete one message (a reply being regenerated). */
export function deleteMessage(id) {
  return guard(() => {
    const d = database();
    return d.transaction("rw", d.messages, async () => {
      const message = await d.messages.get(id);
      await d.messages.delete(id);
      return message ? message.conversationId : null;
    });
  }).then((conversationId) => {
    if (conversationId) announce(messagesChanged(conversationId, [id]));
  });
}

/** Add imported conversations and messages in one transaction: all or nothing. */
export function importConversations(conversations, messages) {
  return guard(() => {
    const d = database();
    return d.transaction("rw", d.conversations, d.messages, async () => {
      await d.conversations.bulkAdd(conversations);
      await d.messages.bulkAdd(messages);
    });
  }).then(() => announce(conversationsChanged(null)));
}

export function deleteConversation(id) {
  return guard(() => {
    const d = database();
    return d.transaction("rw", d.conversations, d.messages, () => {
      d.messages.where("conversationId").equals(id).delete();
      d.conversations.delete(id);
    });
  }).then(() => announce(conversationsChanged([id])));
}

// Conversations deleted with Undo offered: their records exactly as they were stored
// (every field and key type), kept here, never converted, until put back or forgotten.
const taken = new Map();
let takenCount = 0;

/** Delete a conversation and its messages in one transaction, keeping their records for
 *  restoreConversation(token); resolves with the token. */
export function takeConversation(id) {
  return guard(() => {
    const d = database();
    return d.transaction("rw", d.conversations, d.messages, async () => {
      const conversation = await d.conversations.get(id);
      const messages = await d.messages.where("conversationId").equals(id).toArray();
      await d.messages.where("conversationId").equals(id).delete();
      await d.conversations.delete(id);
      return { id, conversations: conversation ? [conversation] : [], messages };
    });
  }).then((records) => {
    announce(conversationsChanged([id]));
    takenCount += 1;
    const token = `taken-${takenCount}`;
    taken.set(token, records);
    return token;
  });
}

/** Put a taken conversation back, records as they were (all or nothing); false when the
 *  token is unknown (forgotten, or put back already). */
export function restoreConversation(token) {
  const records = taken.get(token);
  if (!records) return Promise.resolve(false);
  return announced(() => {
    const d = database();
    return d.transaction("rw", d.conversations, d.messages, async () => {
      await d.conversations.bulkAdd(records.conversations);
      await d.messages.bulkAdd(records.messages);
    });
  }, conversationsChanged([records.id]), messagesChanged(records.id, null)).then(() => {
    taken.delete(token);
    return true;
  });
}

/** The Undo offer is over: the taken records go. */
export function forgetTaken(token) {
  taken.delete(token);
}

/** Every download record (the Download Manager's persisted queue). */
export function listDownloads() {
  return guard(() => database().downloads.toArray());
}

/** Insert or replace one download record (keyed by catalog key). */
export function saveDownload(record) {
  return guard(() => database().downloads.put(record));
}

export function deleteDownload(key) {
  return guard(() => database().downloads.delete(key));
}

/** Storage figures for the UI: {usage, quota, persisted} (nulls when unknown). */
export function storageEstimate() {
  return guard((async () => {
    const s = navigator.storage;
    const est = s && s.estimate ? await s.estimate() : {};
    const persisted = s && s.persisted ? await s.persisted() : null;
    return { usage: est.usage ?? null, quota: est.quota ?? null, persisted };
  })());
}
