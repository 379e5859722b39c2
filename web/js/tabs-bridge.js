// Tabs bridge: this tab's line to the site's other open tabs and windows, called from Python.
//
// connect(scope) resolves with a TabLink once this tab holds its presence lock:
//   link.id             this tab's id (random)
//   link.owner          true if this tab took the owner lock at once (no other tab had it)
//   link.owned          a promise resolved when this tab holds the owner lock (at once if
//                       `owner`; otherwise when every tab before it in line has closed)
//   link.post(message)  to every other tab (BroadcastChannel); `from` is added
//   link.onMessage(fn)  fn(message) for each message of another tab meant for this one
//                       (no `to`, or `to` this tab's id); replaces the one before
//   link.whenGone(id)   resolves once the tab with that id has closed
//
// Locks (Web Locks API), all held until the page goes away, which releases them:
//   localchat-tab:<id>        exclusive, by each tab for its whole life: another tab asks
//                             for it in shared mode and is granted it once that tab is gone
//   localchat-owner:<scope>   the owner of the downloads and the engine of that scope
//                             ("webllm" or "sim"): the first tab to ask; the others queue
//
// Without Web Locks or BroadcastChannel (very old browsers) every tab is its own owner:
// connect() resolves with owner = true and a link that reaches nobody.
//
// Side effects: a BroadcastChannel named localchat-tabs:<scope>; the locks above.

function hold(name, options) {
  // Resolves true once the lock is held (kept until the page goes away), false if
  // `ifAvailable` found it taken.
  return new Promise((resolve) => {
    navigator.locks.request(name, options, (lock) => {
      if (!lock) {
        resolve(false);
        return undefined;
      }
      resolve(true);
      return new Promise(() => {});
    }).catch(() => resolve(false));
  });
}

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function connect(scope) {
  const id = randomId();
  const alone = typeof BroadcastChannel === "undefined" || !(navigator.locks);
  if (alone) {
    return {
      id, owner: true, owned: Promise.resolve(), post() {}, onMessage() {},
      whenGone: () => new Promise(() => {}),
    };
  }
  await hold(`localchat-tab:${id}`, { mode: "exclusive" });
  const ownerLock = `localchat-owner:${scope}`;
  const owner = await hold(ownerLock, { ifAvailable: true });
  const owned = owner ? Promise.resolve() : hold(ownerLock, {}).then(() => undefined);
  const channel = new BroadcastChannel(`localchat-tabs:${scope}`);
  let handler = null;
  channel.onmessage = (event) => {
    const message = event.data;
    if (!message || typeof message !== "object" || message.from === id) return;
    if (message.to != null && message.to !== id) return;
    if (handler) handler(message);
  };
  return {
    id,
    owner,
    owned,
    post(message) {
      const plain = message && typeof message.toJs === "function"
        ? message.toJs({ dict_converter: Object.fromEntries }) : message;
      channel.postMessage({ ...plain, from: id });
    },
    onMessage(fn) {
      handler = fn;
    },
    whenGone(other) {
      return navigator.locks.request(`localchat-tab:${other}`, { mode: "shared" }, () => {})
        .then(() => undefined, () => undefined);
    },
  };
}
