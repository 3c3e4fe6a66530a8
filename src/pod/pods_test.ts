import { assertEquals, assertThrows } from "../../testing/assert.ts";
import { parsePodList, parsePodListText, stripRuntimeScheme } from "./pods.ts";

const ID = (c: string) => c.repeat(64);

// Shaped like a real kubelet /pods answer (trimmed to the fields read plus some noise).
const POD_LIST = {
  kind: "PodList",
  apiVersion: "v1",
  metadata: {},
  items: [
    {
      metadata: {
        name: "web-7d4b9c",
        namespace: "shop",
        uid: "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
        ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "web", controller: true }],
        annotations: {
          "kubernetes.io/config.seen": "2024-01-01T00:00:00Z",
          "kubernetes.io/config.source": "api",
        },
      },
      spec: {
        initContainers: [
          { name: "migrate", image: "busybox" },
          { name: "envoy", image: "envoy", restartPolicy: "Always" },
        ],
        containers: [{ name: "app", image: "nginx" }, { name: "late", image: "nginx" }],
      },
      status: {
        phase: "Running",
        qosClass: "Burstable",
        initContainerStatuses: [
          { name: "migrate", containerID: `containerd://${ID("1")}`, state: { terminated: { exitCode: 0 } } },
          { name: "envoy", containerID: `containerd://${ID("2")}`, state: { running: {} } },
        ],
        containerStatuses: [
          { name: "app", containerID: `containerd://${ID("3")}`, state: { running: {} } },
          { name: "late", state: { waiting: { reason: "ContainerCreating" } } },
        ],
        ephemeralContainerStatuses: [{ name: "debugger", containerID: `containerd://${ID("9")}` }],
      },
    },
    {
      metadata: {
        name: "kube-proxy-x2x9z",
        namespace: "kube-system",
        uid: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name: "kube-proxy", controller: true }],
      },
      spec: { containers: [{ name: "kube-proxy" }] },
      status: {
        qosClass: "BestEffort",
        containerStatuses: [{ name: "kube-proxy", containerID: `docker://${ID("4")}` }],
      },
    },
    {
      metadata: {
        name: "etcd-node1",
        namespace: "kube-system",
        uid: "11111111-2222-3333-4444-555555555555",
        annotations: { "kubernetes.io/config.source": "file", "kubernetes.io/config.hash": "abc" },
        ownerReferences: [{ kind: "Node", name: "node1", controller: true }],
      },
      spec: { containers: [{ name: "etcd" }] },
      status: {
        qosClass: "Guaranteed",
        containerStatuses: [{ name: "etcd", containerID: `cri-o://${ID("5")}` }],
      },
    },
    {
      metadata: {
        name: "kube-apiserver-node1",
        namespace: "kube-system",
        uid: "66666666-7777-8888-9999-000000000000",
        annotations: { "kubernetes.io/config.mirror": "def" },
      },
      status: {
        qosClass: "Burstable",
        containerStatuses: [{ name: "kube-apiserver", containerID: `containerd://${ID("6")}` }],
      },
    },
    {
      metadata: { name: "pending", namespace: "default", uid: "77777777-0000-0000-0000-000000000000" },
      status: { phase: "Pending" },
    },
  ],
};

Deno.test("stripRuntimeScheme handles every runtime and unstarted containers", () => {
  assertEquals(stripRuntimeScheme(`containerd://${ID("a")}`), ID("a"));
  assertEquals(stripRuntimeScheme(`docker://${ID("b")}`), ID("b"));
  assertEquals(stripRuntimeScheme(`cri-o://${ID("c")}`), ID("c"));
  assertEquals(stripRuntimeScheme(""), "");
  assertEquals(stripRuntimeScheme(undefined), "");
  assertEquals(stripRuntimeScheme(ID("d")), "");
});

Deno.test("parsePodList maps container ids to name, pod, namespace, qos and type", () => {
  const v = parsePodList(POD_LIST);
  assertEquals(v.pods, 5);
  const base = { pod: "web-7d4b9c", namespace: "shop", qos: "burstable" };
  assertEquals(v.byContainer.get(ID("1")), { ...base, name: "migrate", type: "init" });
  assertEquals(v.byContainer.get(ID("2")), { ...base, name: "envoy", type: "sidecar" });
  assertEquals(v.byContainer.get(ID("3")), { ...base, name: "app", type: "normal" });
  assertEquals(v.byContainer.get(ID("9")), { ...base, name: "debugger", type: "ephemeral" });
  assertEquals(v.byContainer.get(ID("4")), {
    name: "kube-proxy",
    pod: "kube-proxy-x2x9z",
    namespace: "kube-system",
    qos: "besteffort",
    type: "daemonset",
  });
  assertEquals(v.byContainer.get(ID("5"))?.type, "static");
  assertEquals(v.byContainer.get(ID("5"))?.qos, "guaranteed");
  assertEquals(v.byContainer.get(ID("6"))?.type, "static");
  // 7 started containers; "late" has no id yet.
  assertEquals(v.byContainer.size, 7);
});

Deno.test("parsePodList keeps pod-level facts by UID for containers not started yet", () => {
  const v = parsePodList(POD_LIST);
  assertEquals(v.byPod.get("0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"), {
    name: "",
    pod: "web-7d4b9c",
    namespace: "shop",
    qos: "burstable",
    type: "normal",
  });
  assertEquals(v.byPod.get("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")?.type, "daemonset");
  assertEquals(v.byPod.get("77777777-0000-0000-0000-000000000000"), {
    name: "",
    pod: "pending",
    namespace: "default",
    qos: "",
    type: "normal",
  });
  assertEquals(v.byPod.size, 5);
});

Deno.test("parsePodList: an empty PodList is an empty view, garbage is an error", () => {
  const v = parsePodListText('{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}');
  assertEquals([v.pods, v.byContainer.size, v.byPod.size], [0, 0, 0]);
  assertThrows(() => parsePodListText("<html>404</html>"), /not JSON/);
  assertThrows(() => parsePodListText('{"kind":"Status","code":403}'), /not a PodList/);
  assertThrows(() => parsePodListText("null"), /not a PodList/);
  // Items that are not objects are skipped, not fatal.
  assertEquals(parsePodList({ items: [null, 3] }).pods, 0);
});
