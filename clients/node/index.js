'use strict';
// A Node.js client of xfrm-offloadd: the xfrm_offload.v1 services loaded at run time from the
// repository's .proto files (proto/xfrm_offload/v1), the contract, with nothing generated.
//
//   const { connect, errorDetails } = require('xfrm-offload-client');
//   const nic = connect('unix:/run/xfrm-offload/xfrm-offloadd.sock');
//   const added = await nic.call('xfrmDev', 'StateAdd', { sa });
//   nic.close();
//
// keepCase: true keeps the proto's field names (alg_key, offload_handle, prefixlen_s): the
// kernel's names, the ones the proto documents, the Python client's JSON and grpcurl show.
// proto-loader would otherwise rename them to camelCase (algKey), so a message written from
// the docs would silently lose those fields (unknown keys are dropped, not refused).

const path = require('node:path');
const fs = require('node:fs');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

// The contract: the repository's proto folder, unless XO_PROTO_DIR names another copy.
const PROTO_DIR = process.env.XO_PROTO_DIR || path.resolve(__dirname, '..', '..', 'proto');
// google/rpc/status.proto and error_details.proto (from googleapis, Apache-2.0), for the
// rich error details the server puts in the grpc-status-details-bin trailer.
const GOOGLE_DIR = path.join(__dirname, 'protos');

const LOADER_OPTIONS = {
  keepCase: true,
  longs: String, // uint64 handles and counters do not fit a JS number: strings, as in JSON
  enums: String, // enum names ("XFRM_MODE_TUNNEL"), as the proto's JSON mapping prints them
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR, GOOGLE_DIR],
};

let contract = null;

/** The loaded package definition: { v1: services and message types, rpc: google.rpc }. */
function loadContract() {
  if (contract === null) {
    const files = [
      'xfrm_offload/v1/offload.proto',
      'google/rpc/status.proto',
      'google/rpc/error_details.proto',
    ];
    if (!fs.existsSync(path.join(PROTO_DIR, files[0]))) {
      throw new Error(`${files[0]} not found under ${PROTO_DIR} (set XO_PROTO_DIR)`);
    }
    const definition = protoLoader.loadSync(files, LOADER_OPTIONS);
    const loaded = grpc.loadPackageDefinition(definition);
    contract = {
      definition,
      v1: loaded.xfrm_offload.v1,
      rpc: loaded.google.rpc,
    };
  }
  return contract;
}

const SERVICES = {
  xfrmDev: 'XfrmDevService',
  device: 'DeviceService',
  datapath: 'DatapathService',
  diag: 'DiagService',
};

/** The default server address: $XFRM_OFFLOAD_SERVER, else the server's default socket. */
function defaultAddress() {
  if (process.env.XFRM_OFFLOAD_SERVER) return process.env.XFRM_OFFLOAD_SERVER;
  if (process.getuid && process.getuid() === 0) {
    return 'unix:/run/xfrm-offload/xfrm-offloadd.sock';
  }
  const runtime = process.env.XDG_RUNTIME_DIR;
  const uid = process.getuid ? process.getuid() : 0;
  const dir = runtime ? path.join(runtime, 'xfrm-offload') : `/tmp/xfrm-offload-${uid}`;
  return `unix:${dir}/xfrm-offloadd.sock`;
}

/**
 * Connect to a server (insecure channel, as the server's Unix socket and loopback ports are).
 * Returns { clients, call(service, method, request, {timeoutMs}), close() }.
 */
function connect(address = defaultAddress(), { timeoutMs = 10000 } = {}) {
  const { v1 } = loadContract();
  const credentials = grpc.credentials.createInsecure();
  const options = {
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  };
  const clients = {};
  let channel = null;
  for (const [key, service] of Object.entries(SERVICES)) {
    // One channel for every service: the first client's, shared by the others.
    clients[key] = channel
      ? new v1[service](address, credentials, { ...options, channelOverride: channel })
      : new v1[service](address, credentials, options);
    channel = channel || clients[key].getChannel();
  }
  return {
    address,
    clients,
    /** A unary call as a promise; a refusal rejects with the grpc error (see errorDetails). */
    call(service, method, request = {}, { timeoutMs: perCall = timeoutMs } = {}) {
      const client = clients[service];
      if (!client || typeof client[method] !== 'function') {
        throw new Error(`no RPC ${service}.${method}`);
      }
      const deadline = new Date(Date.now() + perCall);
      return new Promise((resolve, reject) => {
        client[method](request, { deadline }, (err, reply) => (err ? reject(err) : resolve(reply)));
      });
    },
    close() {
      for (const client of Object.values(clients)) client.close();
    },
  };
}

const TYPE_PREFIX = 'type.googleapis.com/';

/**
 * The google.rpc details of a refused call: { code, message, reason, errno, metadata,
 * violations: [{field, description}] } from the grpc-status-details-bin trailer, as the
 * Python client's XfrmOffloadError carries them. null when the error has none.
 */
function errorDetails(err) {
  const values = err && err.metadata ? err.metadata.get('grpc-status-details-bin') : [];
  if (!values || values.length === 0) return null;
  const root = detailTypes();
  const Status = root.lookupType('google.rpc.Status');
  const status = Status.decode(values[0]);
  const result = {
    code: status.code,
    message: status.message,
    reason: '',
    errno: null,
    metadata: {},
    violations: [],
  };
  for (const any of status.details) {
    const name = any.type_url.startsWith(TYPE_PREFIX)
      ? any.type_url.slice(TYPE_PREFIX.length)
      : any.type_url;
    if (name === 'google.rpc.ErrorInfo') {
      const info = root.lookupType(name).decode(any.value);
      result.reason = info.reason;
      result.metadata = { ...info.metadata };
      if (/^\d+$/.test(info.metadata.errno || '')) result.errno = Number(info.metadata.errno);
    } else if (name === 'google.rpc.BadRequest') {
      const bad = root.lookupType(name).decode(any.value);
      for (const v of bad.field_violations) {
        result.violations.push({ field: v.field, description: v.description });
      }
    }
  }
  return result;
}

// protobufjs types for decoding the details (proto-loader's definitions describe services;
// decoding an Any's bytes needs the message types themselves).
let detailRoot = null;
function detailTypes() {
  if (detailRoot === null) {
    const protobuf = require('protobufjs');
    detailRoot = new protobuf.Root();
    detailRoot.resolvePath = (_origin, target) => {
      for (const dir of [GOOGLE_DIR, PROTO_DIR]) {
        const candidate = path.join(dir, target);
        if (fs.existsSync(candidate)) return candidate;
      }
      return target;
    };
    detailRoot.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], {
      keepCase: true,
    });
  }
  return detailRoot;
}

module.exports = { connect, defaultAddress, errorDetails, loadContract, LOADER_OPTIONS, grpc };
