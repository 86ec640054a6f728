/** Reader kind `mqtt`: a local reader publishing on `…/reader/<id>/credential` (the MQTT bridge receives it). */
import { filter } from 'rxjs';
import { ReaderUnavailableError, type ReaderFactory } from './reader.js';

export const openMqttReader: ReaderFactory<'mqtt'> = (r, ctx) => {
  if (!ctx.config.mqtt.enabled) return Promise.reject(new ReaderUnavailableError(`reader '${r.id}': type 'mqtt' needs mqtt.enabled: true`));
  return Promise.resolve({ credentials$: ctx.mqttCredentials.pipe(filter((e) => e.reader === r.id)), close: () => undefined });
};
