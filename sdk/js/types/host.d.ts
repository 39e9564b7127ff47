// world kavro:plugin/host@0.1.0
export type * as KavroPluginCache010 from './interfaces/kavro-plugin-cache.js'; // import kavro:plugin/cache@0.1.0
export type * as KavroPluginClock010 from './interfaces/kavro-plugin-clock.js'; // import kavro:plugin/clock@0.1.0
export type * as KavroPluginConfig010 from './interfaces/kavro-plugin-config.js'; // import kavro:plugin/config@0.1.0
export type * as KavroPluginHttp010 from './interfaces/kavro-plugin-http.js'; // import kavro:plugin/http@0.1.0
export type * as KavroPluginKv010 from './interfaces/kavro-plugin-kv.js'; // import kavro:plugin/kv@0.1.0
export type * as KavroPluginLog010 from './interfaces/kavro-plugin-log.js'; // import kavro:plugin/log@0.1.0
export type * as KavroPluginMetrics010 from './interfaces/kavro-plugin-metrics.js'; // import kavro:plugin/metrics@0.1.0
export type * as KavroPluginTypes010 from './interfaces/kavro-plugin-types.js'; // import kavro:plugin/types@0.1.0
export * as plugin from './interfaces/kavro-plugin-plugin.js'; // export kavro:plugin/plugin@0.1.0
export * as prime from './interfaces/kavro-plugin-prime.js'; // export kavro:plugin/prime@0.1.0
export * as prepare from './interfaces/kavro-plugin-prepare.js'; // export kavro:plugin/prepare@0.1.0
export * as present from './interfaces/kavro-plugin-present.js'; // export kavro:plugin/present@0.1.0
export * as post from './interfaces/kavro-plugin-post.js'; // export kavro:plugin/post@0.1.0
