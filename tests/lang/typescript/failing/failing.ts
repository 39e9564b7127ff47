// A plugin whose code fails on purpose: in prime on /raise, in post on
// /raise-post. The operator must see the exception and its stack.
import type { Plugin } from "kavro";

const failing: Plugin<{ path?: string }> = {
  name: "failing",
  version: "0.1.0",
  prime(state, req) {
    state.path = req.path();
    if (state.path === "/raise") throw new RangeError("failing on purpose in prime");
  },
  post(state) {
    if (state.path === "/raise-post") throw new RangeError("failing on purpose in post");
  },
};
export default failing;
