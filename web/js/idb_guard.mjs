// Loaded before anything else on the page: every IndexedDB connection opened here
// closes itself when someone deletes (or upgrades) its database. Without this, a
// library's long-lived connection (PyScript keeps one to "IDBMap/@pyscript.fs")
// would block the panic wipe's deleteDatabase until the page is closed.

const open = IDBFactory.prototype.open;
IDBFactory.prototype.open = function (...args) {
  const request = open.apply(this, args);
  request.addEventListener("success", () => {
    const db = request.result;
    db.addEventListener("versionchange", () => db.close());
  });
  return request;
};
