// The server's password rules and its common-password list (built from
// delivery.security by build.py), for the UI's checks of the account and vault
// passwords: registered as `passwords_js`. Loaded on first use, not at start-up.

/** The module for Python: load() (resolves to the limits as JSON), is_common(text). */
export function passwords(url, integrity) {
  let common = null;
  let limits = null;
  let loading = null;
  const load = () => {
    loading ??= fetch(url, { integrity })
      .then((r) => {
        if (!r.ok) throw new Error(`password rules: HTTP ${r.status}`);
        return r.json();
      })
      .then((rules) => {
        common = new Set(rules.common);
        limits = { min: rules.min, max: rules.max };
        return JSON.stringify(limits);
      })
      .catch((e) => {
        loading = null; // try again next time
        throw e;
      });
    return loading;
  };
  return Object.freeze({
    load,
    /** Whether the (already lower-cased) password is on the list; load() first. */
    is_common: (folded) => common !== null && common.has(folded),
    loaded: () => common !== null,
  });
}
