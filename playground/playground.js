// Wires GraphiQL to this server: HTTP for queries and mutations, graphql-ws for subscriptions.
// The access token goes in the Headers tab as {"Authorization": "Bearer <accessToken>"}; it is
// also sent in connection_init for subscriptions.
(function () {
  var origin = window.location.origin;
  var wsOrigin = origin.replace(/^http/, 'ws');

  // The Authorization of the Headers tab, as GraphiQL hands it to the fetcher with each run
  // (it keeps the tab's text in its own tab state, which survives a reload).
  var authorization = null;

  function authorizationOf(headers) {
    if (!headers || typeof headers !== 'object') {
      return null;
    }
    return headers.Authorization || headers.authorization || null;
  }

  var wsClient = graphqlWs.createClient({
    url: wsOrigin + '/api/v1/graphql/ws',
    lazy: true,
    connectionParams: function () {
      return authorization ? { authorization: authorization } : {};
    },
  });

  var http = GraphiQL.createFetcher({ url: origin + '/api/v1/graphql' });

  function isSubscription(params, opts) {
    var doc = opts && opts.documentAST;
    if (!doc) {
      return false;
    }
    var ops = doc.definitions.filter(function (d) {
      return d.kind === 'OperationDefinition';
    });
    var op = params.operationName
      ? ops.find(function (d) {
          return d.name && d.name.value === params.operationName;
        })
      : ops[0];
    return Boolean(op) && op.operation === 'subscription';
  }

  // What graphql-ws reports as an error (a list of GraphQL errors when the server refuses the
  // operation, a close event when the socket ends), shown as an answer's errors.
  function asErrors(error) {
    if (Array.isArray(error)) {
      return error;
    }
    if (error && typeof error.code === 'number') {
      return [{ message: 'the socket closed: ' + error.code + ' ' + (error.reason || '') }];
    }
    return [{ message: String((error && error.message) || error) }];
  }

  // One subscription's results, until it completes, fails or GraphiQL stops it.
  async function* subscribe(params) {
    var queue = [];
    var wake = null;
    function push(item) {
      queue.push(item);
      if (wake) {
        wake();
        wake = null;
      }
    }
    var dispose = wsClient.subscribe(params, {
      next: function (result) {
        push({ result: result });
      },
      error: function (error) {
        push({ errors: asErrors(error) });
      },
      complete: function () {
        push({ done: true });
      },
    });
    try {
      for (;;) {
        if (queue.length === 0) {
          await new Promise(function (resolve) {
            wake = resolve;
          });
        }
        var item = queue.shift();
        if (item.done) {
          return;
        }
        if (item.errors) {
          yield { errors: item.errors };
          return;
        }
        yield item.result;
      }
    } finally {
      dispose();
    }
  }

  function fetcher(params, opts) {
    if (!isSubscription(params, opts)) {
      return http(params, opts);
    }
    var next = authorizationOf(opts && opts.headers);
    if (next !== authorization) {
      authorization = next;
      // An open socket speaks for the old token: the next subscription connects again.
      wsClient.terminate();
    }
    return subscribe(params);
  }

  var defaultQuery = [
    '# Welcome to Fahwa.',
    '#',
    '# 1. Run LogIn below (the demo tenant is "demo"; `fahwa serve --demo` printed the passwords).',
    '# 2. Copy accessToken into the Headers tab: {"Authorization": "Bearer <accessToken>"}',
    '# 3. Run Me, Team or any other operation.',
    '',
    'mutation LogIn {',
    '  logIn(input: { tenantSlug: "demo", email: "owner@demo.fahwa.dev", password: "demo-owner-password" }) {',
    '    accessToken',
    '    refreshToken',
    '    accessTokenExpiresAt',
    '    user { id name email role }',
    '  }',
    '}',
    '',
    'query Me {',
    '  me { id name email role permissions tenant { id name slug timezone currency } }',
    '}',
    '',
    'query Team {',
    '  tenant { id name members(first: 100) { totalCount edges { node { id name role } } } }',
    '}',
    '',
  ].join('\n');

  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultEditorToolsVisibility: true,
      shouldPersistHeaders: true,
    })
  );
})();
