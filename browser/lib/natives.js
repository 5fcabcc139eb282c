/**
 * Built-ins as they were when the extension's script started: in the page's world that is
 * before any page script runs. Called through them, a method or getter a page script
 * replaces later on a prototype never sees the objects the extension hands them (an
 * original photo, a cache of protected copies).
 */

const apply = Reflect.apply;

/** `proto[name]`, as a function of the object and the method's arguments. */
export function nativeMethod(proto, name) {
  const method = proto[name];
  return (object, ...args) => apply(method, object, args);
}

/** The getter of `proto`'s `name`, as a function of the object. */
export function nativeGetter(proto, name) {
  const get = Object.getOwnPropertyDescriptor(proto, name).get;
  return (object) => apply(get, object, []);
}

const [weakGet, weakSet, weakDelete] = ["get", "set", "delete"].map((name) => nativeMethod(WeakMap.prototype, name));

/** A WeakMap whose methods a page script cannot reach. */
export function privateWeakMap() {
  const map = new WeakMap();
  return {
    get: (key) => weakGet(map, key),
    set: (key, value) => weakSet(map, key, value),
    delete: (key) => weakDelete(map, key),
  };
}
