// A memory-only stand-in for IndexedDB, installed by boot.js only when the browser
// refuses storage (IndexedDB missing, or `indexedDB.open` throwing or failing, as in
// private modes or with site data blocked).
//
// Why: PyScript keeps two small caches of its own in IndexedDB and cannot start without
// them (it awaits its package cache, and opens its file-system store at import), so in
// such a browser the app would never run. With this stand-in PyScript's caches live in
// memory for this visit and the app starts; LocalChat's own conversation store never
// uses it (db-bridge.js reads boot.js's storage verdict and reports the refusal).
// It implements only what a simple key/value user needs: open (with upgradeneeded),
// createObjectStore, transactions, and get/getKey/getAll/getAllKeys/put/add/delete/
// clear/count on out-of-line keys. Requests and transactions settle asynchronously,
// in order, as IndexedDB's do.
//
// Usage: `installMemoryIndexedDB()` (replaces globalThis.indexedDB for this page).

const later = (fn) => setTimeout(fn, 0);

function event(type, target, extra = {}) {
  return { type, target, currentTarget: target, preventDefault() {}, stopPropagation() {},
           ...extra };
}

function fire(target, type, extra) {
  const handler = target[`on${type}`];
  if (typeof handler === "function") handler.call(target, event(type, target, extra));
}

class MemoryRequest {
  constructor(transaction = null, source = null) {
    this.result = undefined;
    this.error = null;
    this.readyState = "pending";
    this.transaction = transaction;
    this.source = source;
    this.onsuccess = null;
    this.onerror = null;
  }
}

function names(list) {
  const out = [...list];
  out.contains = (name) => list.includes(name);
  out.item = (i) => list[i] ?? null;
  return out;
}

class MemoryStore {
  constructor(transaction, name, data) {
    this.transaction = transaction;
    this.name = name;
    this._data = data; // Map: key -> value
  }

  _request(work) {
    const request = new MemoryRequest(this.transaction, this);
    this.transaction._queue(request, work);
    return request;
  }

  get(key) { return this._request(() => structuredClone(this._data.get(key))); }
  getKey(key) { return this._request(() => (this._data.has(key) ? key : undefined)); }
  getAll() { return this._request(() => [...this._data.values()].map((v) => structuredClone(v))); }
  getAllKeys() { return this._request(() => [...this._data.keys()]); }
  count() { return this._request(() => this._data.size); }
  put(value, key) {
    return this._request(() => { this._data.set(key, structuredClone(value)); return key; });
  }
  add(value, key) {
    return this._request(() => {
      if (this._data.has(key)) {
        throw new DOMException("Key already exists in the object store.", "ConstraintError");
      }
      this._data.set(key, structuredClone(value));
      return key;
    });
  }
  delete(key) { return this._request(() => { this._data.delete(key); }); }
  clear() { return this._request(() => { this._data.clear(); }); }
}

class MemoryTransaction {
  constructor(database, mode, finished = null) {
    this.db = database;
    this.mode = mode;
    this.error = null;
    this.oncomplete = null;
    this.onerror = null;
    this.onabort = null;
    this._pending = [];
    this._done = false;
    this._finished = finished;
    later(() => this._run());
  }

  objectStore(name) {
    const data = this.db._stores.get(name);
    if (!data) throw new DOMException(`No object store named ${name}.`, "NotFoundError");
    return new MemoryStore(this, name, data);
  }

  abort() {
    this._done = true;
    this._pending = [];
    later(() => fire(this, "abort"));
  }

  _queue(request, work) {
    if (this._done) throw new DOMException("The transaction has finished.", "TransactionInactiveError");
    this._pending.push([request, work]);
  }

  // Settle the queued requests in order (a handler may queue more), then complete.
  _run() {
    while (!this._done && this._pending.length) {
      const [request, work] = this._pending.shift();
      request.readyState = "done";
      try {
        request.result = work();
        fire(request, "success");
      } catch (err) {
        request.error = err;
        fire(request, "error");
      }
    }
    if (this._done) return;
    this._done = true;
    fire(this, "complete");
    if (this._finished) this._finished();
  }
}

class MemoryDatabase {
  constructor(record) {
    this.name = record.name;
    this.version = record.version;
    this._stores = record.stores;
    this.onclose = null;
    this.onversionchange = null;
    this.onabort = null;
    this.onerror = null;
  }

  get objectStoreNames() { return names([...this._stores.keys()].sort()); }

  createObjectStore(name) {
    if (!this._stores.has(name)) this._stores.set(name, new Map());
    return new MemoryStore(null, name, this._stores.get(name));
  }

  deleteObjectStore(name) { this._stores.delete(name); }

  transaction(storeNames, mode = "readonly") {
    for (const name of [].concat(storeNames)) {
      if (!this._stores.has(name)) {
        throw new DOMException(`No object store named ${name}.`, "NotFoundError");
      }
    }
    return new MemoryTransaction(this, mode);
  }

  close() {}
}

/** A factory with IndexedDB's shape whose databases live in this page's memory. */
export function memoryIndexedDB() {
  const databases = new Map(); // name -> {name, version, stores}
  return {
    open(name, version) {
      const request = new MemoryRequest();
      request.onupgradeneeded = null;
      request.onblocked = null;
      later(() => {
        let record = databases.get(name);
        const oldVersion = record ? record.version : 0;
        const target = version ?? (oldVersion || 1);
        if (target < oldVersion) {
          request.readyState = "done";
          request.error = new DOMException("The requested version is older than the "
                                           + "existing one.", "VersionError");
          fire(request, "error");
          return;
        }
        if (!record) {
          record = { name, version: 0, stores: new Map() };
          databases.set(name, record);
        }
        const database = new MemoryDatabase(record);
        request.result = database;
        const succeed = () => {
          request.readyState = "done";
          request.transaction = null;
          fire(request, "success");
        };
        if (target === oldVersion) {
          succeed();
          return;
        }
        record.version = target;
        database.version = target;
        // The upgrade transaction completes first (its handlers are set by the
        // upgradeneeded handler), then the open request succeeds.
        const upgrade = new MemoryTransaction(database, "versionchange", () => later(succeed));
        request.transaction = upgrade;
        fire(request, "upgradeneeded", { oldVersion, newVersion: target });
      });
      return request;
    },
    deleteDatabase(name) {
      const request = new MemoryRequest();
      later(() => {
        databases.delete(name);
        request.readyState = "done";
        fire(request, "success", { oldVersion: 0, newVersion: null });
      });
      return request;
    },
    databases() {
      return Promise.resolve([...databases.values()].map(({ name, version }) => ({ name, version })));
    },
    cmp(a, b) {
      return a < b ? -1 : a > b ? 1 : 0;
    },
  };
}

/** Make `globalThis.indexedDB` the memory stand-in (for PyScript's caches). */
export function installMemoryIndexedDB() {
  Object.defineProperty(globalThis, "indexedDB", {
    value: memoryIndexedDB(),
    configurable: true,
    writable: true,
    enumerable: true,
  });
}
