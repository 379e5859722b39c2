// Keeping several LocalChat tabs of one browser profile in step (imported by db-bridge.js).
//
// Owns the "localchat-data" BroadcastChannel: db-bridge.js announces each successful
// store write on it ({kind: "conversations", ids: [...] | null} or {kind: "messages",
// conversationId}), and every other tab re-reads what changed from IndexedDB, the
// source of truth. A channel never receives its own messages, so a tab is not told of
// its own writes. Also owns the Web Locks that say a reply is still streaming in some
// tab ("localchat-reply-<message id>", held by the tab that streams it).
// Every promise rejects only with a real Error (see db-bridge.js's toError).

export const CHANNEL_NAME = "localchat-data";
export const REPLY_LOCK_PREFIX = "localchat-reply-";

let channel = null;

function theChannel() {
  if (channel === null && typeof BroadcastChannel !== "undefined") {
    channel = new BroadcastChannel(CHANNEL_NAME);
  }
  return channel;
}

/** Tell the other tabs what changed (never throws: a tab without the API is alone). */
export function announce(notice) {
  try {
    const c = theChannel();
    if (c) c.postMessage(notice);
  } catch (_err) {
    // Nothing to tell anyone: the other tabs show what they last read.
  }
}

/** Call `callback(notice)` for every other tab's notice; returns a function that stops it. */
export function onDataChange(callback) {
  const c = theChannel();
  if (!c) return () => {};
  const handler = (event) => callback(event.data);
  c.addEventListener("message", handler);
  return () => c.removeEventListener("message", handler);
}

/**
 * Hold the lock of a streaming reply. Resolves once it is held, to a function that
 * releases it (the lock is also released when the tab goes away, which is the point).
 */
export function holdReplyLock(messageId) {
  return new Promise((resolveHeld) => {
    const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
    if (!locks || !locks.request) {
      resolveHeld(() => {});
      return;
    }
    locks
      .request(REPLY_LOCK_PREFIX + messageId, () => new Promise((release) => resolveHeld(release)))
      .catch(() => resolveHeld(() => {}));
  });
}

/** Resolves once no tab holds the reply's lock (it is taken and let go at once). */
export function replyLockReleased(messageId) {
  return new Promise((resolve) => {
    const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
    if (!locks || !locks.request) {
      resolve();
      return;
    }
    locks.request(REPLY_LOCK_PREFIX + messageId, () => undefined).then(resolve, resolve);
  });
}

/** Ids of the messages whose reply lock some tab holds now (streaming somewhere). */
export async function heldReplyLocks() {
  const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
  if (!locks || !locks.query) return [];
  try {
    const snapshot = await locks.query();
    return (snapshot.held || [])
      .map((lock) => lock.name || "")
      .filter((name) => name.startsWith(REPLY_LOCK_PREFIX))
      .map((name) => name.slice(REPLY_LOCK_PREFIX.length));
  } catch (_err) {
    return [];
  }
}
