/**
 * Tells the service manager how the agent is doing (systemd's sd_notify
 * protocol, as flanneld does with daemon.SdNotify): READY=1 once routes,
 * rules and subnet.env are in place, so `Type=notify` units work; STATUS=
 * lines while it waits; STOPPING=1 on the way out. Without $NOTIFY_SOCKET it
 * does nothing.
 */
import type { Logger } from '../log';
import { loadNative } from '../native';

/** STATUS= text kept short enough for the addon's 512-byte message (UTF-8 may need several bytes per character). */
const MAX_STATUS_CHARS = 120;

export class ServiceNotifier {
  private readonly socket: string | undefined;
  private readonly log: Logger;
  private warned = false;

  constructor(log: Logger, env: NodeJS.ProcessEnv = process.env) {
    const socket = env['NOTIFY_SOCKET'];
    this.socket = socket === undefined || socket === '' ? undefined : socket;
    this.log = log;
  }

  private send(message: string): void {
    if (this.socket === undefined) return;
    try {
      loadNative().notifySend(this.socket, message);
    } catch (err) {
      if (!this.warned) this.log.error({ err: (err as Error).message, socket: this.socket }, `cannot notify the service manager (${message})`);
      this.warned = true;
    }
  }

  ready(): void {
    this.send('READY=1');
    if (this.socket !== undefined) this.log.debug({ socket: this.socket }, 'sent READY=1 to the service manager');
  }

  /** One line; long texts (an etcd error) are cut to fit the datagram. */
  status(text: string): void {
    const line = text.replace(/\n/g, ' ');
    this.send(`STATUS=${line.length > MAX_STATUS_CHARS ? `${line.slice(0, MAX_STATUS_CHARS - 3)}...` : line}`);
  }

  stopping(): void {
    this.send('STOPPING=1');
  }
}
