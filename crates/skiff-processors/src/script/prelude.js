// Filebeat's event API (beatevent_v0), written in JavaScript over a plain object of the
// event's fields, so a call from the script never crosses into Rust.
"use strict";
class Event {
  constructor(fields) {
    if (fields === null || typeof fields !== "object" || Array.isArray(fields)) {
      throw new Error("Event constructor requires an object argument");
    }
    this.fields = fields;
    this._cancelled = false;
  }
  static _isObj(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }
  Get(key) {
    if (key === undefined) return this.fields;
    key = String(key);
    if (Object.prototype.hasOwnProperty.call(this.fields, key)) return this.fields[key];
    let o = this.fields;
    for (const p of key.split(".")) {
      if (!Event._isObj(o) || !Object.prototype.hasOwnProperty.call(o, p)) return null;
      o = o[p];
    }
    return o === undefined ? null : o;
  }
  Put(key, value) {
    if (arguments.length !== 2) throw new Error("Put requires two arguments (key and value)");
    const parts = String(key).split(".");
    let o = this.fields;
    for (let i = 0; i < parts.length - 1; i++) {
      let n = o[parts[i]];
      if (n === undefined || n === null) {
        n = {};
        o[parts[i]] = n;
      } else if (!Event._isObj(n)) {
        throw new Error("cannot put " + key + ": " + parts.slice(0, i + 1).join(".") + " is not an object");
      }
      o = n;
    }
    const last = parts[parts.length - 1];
    const old = o[last];
    o[last] = value;
    return old === undefined ? null : old;
  }
  Delete(key) {
    if (arguments.length !== 1) throw new Error("Delete requires one argument");
    const parts = String(key).split(".");
    let o = this.fields;
    for (let i = 0; i < parts.length - 1; i++) {
      o = o[parts[i]];
      if (!Event._isObj(o)) return false;
    }
    const last = parts[parts.length - 1];
    if (!Object.prototype.hasOwnProperty.call(o, last)) return false;
    delete o[last];
    return true;
  }
  Rename(from, to) {
    if (arguments.length !== 2) throw new Error("Rename requires two arguments (from and to)");
    if (this.Get(to) !== null) return false;
    const v = this.Get(from);
    if (v === null) return false;
    this.Delete(from);
    try {
      this.Put(to, v);
    } catch (e) {
      this.Put(from, v);
      return false;
    }
    return true;
  }
  Cancel() { this._cancelled = true; }
  IsCancelled() { return this._cancelled; }
  Tag(tag) {
    if (arguments.length !== 1) throw new Error("Tag requires one argument");
    this._append("tags", String(tag), true);
  }
  AppendTo(field, value) {
    if (arguments.length !== 2) throw new Error("AppendTo requires two arguments (field and value)");
    this._append(String(field), String(value), false);
  }
  _append(field, value, alwaysArray) {
    const cur = this.Get(field);
    if (cur === null) {
      this.Put(field, alwaysArray ? [value] : value);
    } else if (typeof cur === "string") {
      if (cur !== value) this.Put(field, [cur, value]);
    } else if (Array.isArray(cur)) {
      if (!cur.includes(value)) cur.push(value);
    } else {
      throw new Error("unexpected type " + typeof cur + " found for " + field + " field");
    }
  }
}
globalThis.Event = Event;
globalThis.__skiff_process = function (json) {
  const evt = new Event(JSON.parse(json));
  process(evt);
  return evt._cancelled ? null : JSON.stringify(evt.fields);
};
const __skiff_fmt = (args) => args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ");
globalThis.console = {
  log: (...a) => __skiff_log("info", __skiff_fmt(a)),
  info: (...a) => __skiff_log("info", __skiff_fmt(a)),
  debug: (...a) => __skiff_log("debug", __skiff_fmt(a)),
  warn: (...a) => __skiff_log("warn", __skiff_fmt(a)),
  error: (...a) => __skiff_log("error", __skiff_fmt(a)),
};
