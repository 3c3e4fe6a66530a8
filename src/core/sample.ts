// A Sample is one Prometheus series value produced by a collector at scrape time.
// Collectors name series without the `huatuo_bamai_` prefix and without the
// `host`/`region` labels: the registry adds both to every sample.

export type MetricType = "gauge" | "counter";

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  /** Series name without the `huatuo_bamai_` prefix, e.g. `cpu_util_sys`. */
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly value: number;
  readonly labels?: Labels;
}

export function gauge(name: string, help: string, value: number, labels?: Labels): Sample {
  return { name, help, type: "gauge", value, labels };
}

export function counter(name: string, help: string, value: number, labels?: Labels): Sample {
  return { name, help, type: "counter", value, labels };
}
