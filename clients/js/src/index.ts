/**
 * Tollgate's client for apps: reads entitlements from an edge, keeps an ETag cache, follows
 * changes over the edge's event stream, and passes `minVersion` through for read-your-writes.
 * No runtime dependencies: `fetch`, `TextDecoder` and `AbortController` are all it needs
 * (browsers, Node 18+, Deno, Bun, workers).
 *
 * ```ts
 * const tollgate = createClient({ edgeUrl: "https://edge.example.com", key: "pk_test_…" });
 * if (await tollgate.hasAccess("user-123", "export-data")) showExportButton();
 * const sub = tollgate.subscribe("user-123", (e) => render(e.entitlements));
 * ```
 */

export type FeatureType = "BOOLEAN" | "METER" | "CUSTOMIZABLE";

/** One feature as a customer has it (the edge's GET shape). */
export interface Entitlement {
  featureId: string;
  featureType: FeatureType;
  hasAccess: boolean;
  /** `null`: unlimited; absent for BOOLEAN features. */
  usageLimit?: number | null;
  currentUsage?: number;
  remaining?: number;
  resetAt?: string;
  hardLimit?: boolean;
}

/** A customer's entitlements. */
export interface Entitlements {
  customerId: string;
  entitlements: Entitlement[];
  /**
   * The change-log version the edge answered at: the event's id on a stream; on reads that
   * asked for a `minVersion`, the edge's `Tollgate-Version`.
   */
  version?: number;
  /** The edge had not applied `minVersion` within its wait bound (`Tollgate-Stale`). */
  stale?: boolean;
}

export interface ClientOptions {
  /** The edge's base URL, e.g. `https://edge.example.com`. */
  edgeUrl: string;
  /** A publishable key (`pk_…`), or a secret key on servers. */
  key?: string;
  /** A customer token (`ct_…`), or a function that returns a fresh one. */
  token?: string | (() => string | Promise<string>);
  /** `fetch` to use (defaults to the global one). */
  fetch?: typeof fetch;
  /** Longest wait between stream reconnects, ms (default 30,000). */
  maxReconnectDelayMs?: number;
}

export interface ReadOptions {
  /**
   * Read-your-writes: the `Tollgate-Version` a control-plane write answered with. The edge
   * waits (briefly) until it has applied that version; see `Entitlements.stale`.
   */
  minVersion?: number;
  signal?: AbortSignal;
}

export interface SubscribeOptions {
  /** Wait for this version before the first event (read-your-writes). */
  minVersion?: number;
  /** Resume after this event id instead of starting with the current entitlements. */
  lastEventId?: string;
  /** Called on errors; the subscription keeps reconnecting unless `fatal`. */
  onError?: (error: TollgateError, fatal: boolean) => void;
  /** Called after each (re)connection. */
  onOpen?: () => void;
}

export interface Subscription {
  /** Stops the stream for good. */
  close(): void;
  /** The id of the last event received: what a reconnect resumes from. */
  readonly lastEventId: string | undefined;
  readonly closed: boolean;
}

/** An answer from the edge that was not a success. */
export class TollgateError extends Error {
  readonly status: number;
  readonly type: string;
  /** Seconds to wait before trying again (429, 503). */
  readonly retryAfter?: number;

  constructor(status: number, type: string, message: string, retryAfter?: number) {
    super(message);
    this.name = "TollgateError";
    this.status = status;
    this.type = type;
    this.retryAfter = retryAfter;
  }
}

interface Cached {
  etag: string;
  value: Entitlements;
}

const MIN_VERSION = "Tollgate-Min-Version";

/** The ETag cache keeps at most this many customers (oldest first out). */
const CACHE_LIMIT = 256;

export class TollgateClient {
  private readonly base: string;
  private readonly options: ClientOptions;
  private readonly cache = new Map<string, Cached>();

  constructor(options: ClientOptions) {
    if (!options || typeof options.edgeUrl !== "string" || options.edgeUrl === "") {
      throw new TypeError("createClient: edgeUrl is required");
    }
    if (!options.key && !options.token) {
      throw new TypeError("createClient: a key or a token is required");
    }
    this.base = options.edgeUrl.replace(/\/+$/, "");
    this.options = options;
  }

  private fetcher(): typeof fetch {
    const f = this.options.fetch ?? globalThis.fetch;
    if (!f) throw new TypeError("no fetch: pass one in ClientOptions.fetch");
    return f;
  }

  private async authorization(): Promise<string> {
    const { key, token } = this.options;
    const credential = key ?? (typeof token === "function" ? await token() : token);
    return `Bearer ${credential}`;
  }

  private url(path: string, customerId: string | undefined): string {
    const q = customerId === undefined ? "" : `?customerId=${encodeURIComponent(customerId)}`;
    return `${this.base}${path}${q}`;
  }

  /**
   * Every entitlement of a customer (with a token, `customerId` may be left out). Repeated
   * reads send the last ETag; a 304 answers from the cache.
   */
  async getEntitlements(customerId?: string, opts: ReadOptions = {}): Promise<Entitlements> {
    const cacheKey = customerId ?? "";
    const cached = this.cache.get(cacheKey);
    const headers: Record<string, string> = {
      Authorization: await this.authorization(),
      Accept: "application/json",
    };
    if (cached) headers["If-None-Match"] = cached.etag;
    if (opts.minVersion !== undefined) headers[MIN_VERSION] = String(opts.minVersion);
    const resp = await this.fetcher()(this.url("/api/v1/entitlements/", customerId), {
      headers,
      signal: opts.signal,
    });
    const meta = versionOf(resp);
    if (resp.status === 304 && cached) {
      return { ...cached.value, ...meta };
    }
    if (resp.status !== 200) throw await errorOf(resp);
    const value = (await resp.json()) as Entitlements;
    const etag = resp.headers.get("ETag");
    if (etag) {
      this.cache.delete(cacheKey);
      this.cache.set(cacheKey, { etag, value });
      if (this.cache.size > CACHE_LIMIT) {
        const oldest = this.cache.keys().next().value;
        if (oldest !== undefined) this.cache.delete(oldest);
      }
    }
    return { ...value, ...meta };
  }

  /** One feature of a customer, or `undefined` when the catalog has no such feature. */
  async getEntitlement(
    customerId: string | undefined,
    featureId: string,
    opts: ReadOptions = {},
  ): Promise<Entitlement | undefined> {
    const all = await this.getEntitlements(customerId, opts);
    return all.entitlements.find((e) => e.featureId === featureId);
  }

  /** Whether the customer may use the feature (`false` for a feature the catalog lacks). */
  async hasAccess(
    customerId: string | undefined,
    featureId: string,
    opts: ReadOptions = {},
  ): Promise<boolean> {
    return (await this.getEntitlement(customerId, featureId, opts))?.hasAccess ?? false;
  }

  /**
   * Follows a customer's entitlements: `onChange` gets them at once, then after every change.
   * A dropped stream reconnects with `Last-Event-ID`, so nothing is missed or repeated.
   */
  subscribe(
    customerId: string | undefined,
    onChange: (entitlements: Entitlements) => void,
    opts: SubscribeOptions = {},
  ): Subscription {
    return new Stream(this, customerId, onChange, opts, this.options.maxReconnectDelayMs ?? 30_000);
  }

  /** @internal */
  async openStream(
    customerId: string | undefined,
    lastEventId: string | undefined,
    minVersion: number | undefined,
    signal: AbortSignal,
  ): Promise<Response> {
    const headers: Record<string, string> = {
      Authorization: await this.authorization(),
      Accept: "text/event-stream",
    };
    if (lastEventId !== undefined) headers["Last-Event-ID"] = lastEventId;
    if (minVersion !== undefined) headers[MIN_VERSION] = String(minVersion);
    return this.fetcher()(this.url("/api/v1/entitlements/stream", customerId), {
      headers,
      signal,
      cache: "no-store",
    });
  }
}

function versionOf(resp: Response): { version?: number; stale?: boolean } {
  const v = resp.headers.get("Tollgate-Version");
  const out: { version?: number; stale?: boolean } = {};
  if (v !== null && v !== "" && Number.isFinite(Number(v))) out.version = Number(v);
  if (resp.headers.get("Tollgate-Stale") === "true") out.stale = true;
  return out;
}

async function errorOf(resp: Response): Promise<TollgateError> {
  const retry = resp.headers.get("Retry-After");
  const retryAfter = retry !== null && /^\d+$/.test(retry) ? Number(retry) : undefined;
  let type = "error";
  let message = `HTTP ${resp.status}`;
  try {
    const body = (await resp.json()) as { error?: { type?: string; message?: string } };
    if (body?.error?.type) type = body.error.type;
    if (body?.error?.message) message = body.error.message;
  } catch {
    // not the envelope
  }
  return new TollgateError(resp.status, type, message, retryAfter);
}

/** One server-sent event block, as the WHATWG parser assembles it. */
interface Block {
  id?: string;
  data?: string;
  event?: string;
  retry?: number;
}

/**
 * A WHATWG-conformant event-stream parser: lines end in LF, CR or CRLF; `data` lines join
 * with LF; an `id` with no data still moves the last event id.
 */
class Parser {
  private buf = "";
  private block: Block = {};
  private dataLines: string[] = [];

  push(text: string, emit: (b: Block) => void): void {
    this.buf += text;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) return;
      // A lone CR at the end may be the first half of CRLF: wait for more.
      if (m[0] === "\r" && m.index === this.buf.length - 1) return;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line, emit);
    }
  }

  private line(line: string, emit: (b: Block) => void): void {
    if (line === "") {
      const b = this.block;
      if (this.dataLines.length > 0) b.data = this.dataLines.join("\n");
      if (b.id !== undefined || b.data !== undefined || b.retry !== undefined) emit(b);
      this.block = {};
      this.dataLines = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.dataLines.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.block.id = value;
        break;
      case "event":
        this.block.event = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.block.retry = Number(value);
        break;
    }
  }
}

class Stream implements Subscription {
  lastEventId: string | undefined;
  closed = false;
  private controller: AbortController | undefined;
  private retryMs = 2_000;
  private failures = 0;

  constructor(
    private readonly client: TollgateClient,
    private readonly customerId: string | undefined,
    private readonly onChange: (e: Entitlements) => void,
    private readonly opts: SubscribeOptions,
    private readonly maxDelay: number,
  ) {
    this.lastEventId = opts.lastEventId;
    void this.run();
  }

  close(): void {
    this.closed = true;
    this.controller?.abort();
  }

  private report(error: TollgateError, fatal: boolean): void {
    try {
      this.opts.onError?.(error, fatal);
    } catch {
      // the caller's handler failing must not end the stream
    }
  }

  private async run(): Promise<void> {
    let minVersion = this.opts.minVersion;
    while (!this.closed) {
      this.controller = new AbortController();
      let wait = this.retryMs;
      try {
        const resp = await this.client.openStream(
          this.customerId,
          this.lastEventId,
          minVersion,
          this.controller.signal,
        );
        if (resp.status !== 200 || !resp.body) {
          const err = await errorOf(resp);
          // Bad requests and refused credentials will not get better by retrying.
          const fatal = resp.status >= 400 && resp.status < 500 && resp.status !== 429;
          this.report(err, fatal);
          if (fatal) {
            this.closed = true;
            return;
          }
          if (err.retryAfter !== undefined) wait = err.retryAfter * 1000;
        } else {
          this.failures = 0;
          minVersion = undefined;
          this.opts.onOpen?.();
          await this.read(resp.body);
        }
      } catch (e) {
        if (this.closed) return;
        this.report(new TollgateError(0, "network", String(e)), false);
      }
      if (this.closed) return;
      this.failures += 1;
      const backoff = Math.min(this.maxDelay, wait * 2 ** Math.min(this.failures - 1, 5));
      await new Promise((r) => setTimeout(r, backoff));
    }
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    const parser = new Parser();
    const emit = (b: Block) => {
      if (b.retry !== undefined) this.retryMs = b.retry;
      if (b.id !== undefined) this.lastEventId = b.id;
      if (b.data === undefined || (b.event !== undefined && b.event !== "message")) return;
      let value: Entitlements;
      try {
        value = JSON.parse(b.data) as Entitlements;
      } catch {
        return;
      }
      if (b.id !== undefined && /^\d+$/.test(b.id)) value.version = Number(b.id);
      this.onChange(value);
    };
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        parser.push(decoder.decode(value, { stream: true }), emit);
      }
    } finally {
      reader.releaseLock();
    }
  }
}

/** A client for one edge, authenticated with a key or a customer token. */
export function createClient(options: ClientOptions): TollgateClient {
  return new TollgateClient(options);
}
