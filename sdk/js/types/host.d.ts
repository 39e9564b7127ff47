// world kavro:plugin/host@0.2.0
export type * as KavroPluginCache020 from './interfaces/kavro-plugin-cache.js'; // import kavro:plugin/cache@0.2.0
export type * as KavroPluginClock020 from './interfaces/kavro-plugin-clock.js'; // import kavro:plugin/clock@0.2.0
export type * as KavroPluginConfig020 from './interfaces/kavro-plugin-config.js'; // import kavro:plugin/config@0.2.0
export type * as KavroPluginHttp020 from './interfaces/kavro-plugin-http.js'; // import kavro:plugin/http@0.2.0
export type * as KavroPluginKv020 from './interfaces/kavro-plugin-kv.js'; // import kavro:plugin/kv@0.2.0
export type * as KavroPluginLog020 from './interfaces/kavro-plugin-log.js'; // import kavro:plugin/log@0.2.0
export type * as KavroPluginMetrics020 from './interfaces/kavro-plugin-metrics.js'; // import kavro:plugin/metrics@0.2.0
export type * as KavroPluginRealtime020 from './interfaces/kavro-plugin-realtime.js'; // import kavro:plugin/realtime@0.2.0
export type * as KavroPluginTypes020 from './interfaces/kavro-plugin-types.js'; // import kavro:plugin/types@0.2.0
export * as plugin from './interfaces/kavro-plugin-plugin.js'; // export kavro:plugin/plugin@0.2.0
export * as prime from './interfaces/kavro-plugin-prime.js'; // export kavro:plugin/prime@0.2.0
export * as prepare from './interfaces/kavro-plugin-prepare.js'; // export kavro:plugin/prepare@0.2.0
export * as present from './interfaces/kavro-plugin-present.js'; // export kavro:plugin/present@0.2.0
export * as post from './interfaces/kavro-plugin-post.js'; // export kavro:plugin/post@0.2.0
