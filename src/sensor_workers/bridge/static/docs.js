// The bridge's API docs: fetches /openapi.json with the bearer token and renders it as plain
// DOM (textContent only: nothing in the document is ever parsed as HTML). No outside resource.
'use strict';

(() => {
  // Shared with the dashboard (app.js): a token entered in either page serves both.
  const TOKEN_KEY = 'sensor_workers.token';
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => node.setAttribute(key, value));
    children.flat(Infinity).forEach((child) => {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : String(child));
      }
    });
    return node;
  }

  // A schema as indented JSON; each $ref becomes a link to the component it names.
  function schemaBlock(schema) {
    const pre = el('pre');
    const text = JSON.stringify(schema, null, 2) || '';
    const ref = /"\$ref": "#\/components\/schemas\/([^"]+)"/g;
    let last = 0;
    for (const match of text.matchAll(ref)) {
      pre.append(text.slice(last, match.index + 9));
      pre.append(el('a', { href: `#schema-${match[1]}` }, `#/components/schemas/${match[1]}`));
      pre.append('"');
      last = match.index + match[0].length;
    }
    pre.append(text.slice(last));
    return pre;
  }

  function contentBlocks(content) {
    return Object.entries(content || {}).map(([type, media]) => [
      el('p', {}, el('code', {}, type)), schemaBlock(media.schema || {}),
    ]);
  }

  function parametersTable(parameters) {
    if (!parameters || !parameters.length) return null;
    return [el('h3', {}, 'Parameters'), el('table', {},
      el('tr', {}, el('th', {}, 'name'), el('th', {}, 'in'), el('th', {}, 'schema'),
        el('th', {}, 'description')),
      parameters.map((p) => el('tr', {},
        el('td', {}, el('code', {}, p.name), p.required ? ' (required)' : ''),
        el('td', {}, p.in), el('td', {}, el('code', {}, JSON.stringify(p.schema || {}))),
        el('td', {}, p.description || ''))))];
  }

  function responsesTable(responses) {
    return [el('h3', {}, 'Responses'), el('table', {},
      el('tr', {}, el('th', {}, 'status'), el('th', {}, 'description and body')),
      Object.entries(responses || {}).map(([status, answer]) => el('tr', {},
        el('td', {}, el('code', {}, status)),
        el('td', {}, el('div', {}, answer.description || ''),
          Object.entries(answer.headers || {}).map(([name, header]) => el('div', {},
            'header ', el('code', {}, name), `: ${header.description || ''}`)),
          contentBlocks(answer.content)))))];
  }

  function operation(path, method, op) {
    const security = op.security && op.security.length ? 'bearer token' : 'no token';
    return el('section', { class: 'operation', id: `${method}-${path}` },
      el('h2', {}, el('span', { class: 'method' }, method), path),
      el('p', { class: 'meta' }, `${(op.tags || []).join(', ')} · ${security}`),
      el('p', { class: 'description' }, op.description || op.summary || ''),
      parametersTable(op.parameters),
      op.requestBody ? [el('h3', {}, 'Request body'), contentBlocks(op.requestBody.content)]
        : null,
      responsesTable(op.responses));
  }

  function render(doc) {
    const info = doc.info || {};
    document.title = `${info.title} ${info.version}`;
    $('title').textContent = `${info.title} ${info.version} (OpenAPI ${doc.openapi})`;
    const operations = Object.entries(doc.paths || {}).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => operation(path, method, op)));
    const schemas = Object.entries((doc.components || {}).schemas || {}).map(
      ([name, schema]) => el('section', { id: `schema-${name}` }, el('h3', {}, name),
        schemaBlock(schema)));
    $('doc').replaceChildren(
      el('p', { class: 'description' }, info.description || ''),
      el('nav', {}, el('ul', {}, Object.entries(doc.paths || {}).flatMap(([path, item]) =>
        Object.keys(item).map((method) => el('li', {},
          el('a', { href: `#${method}-${path}` }, `${method.toUpperCase()} ${path}`)))))),
      ...operations, el('h2', {}, 'Schemas'), ...schemas);
  }

  async function load() {
    const token = sessionStorage.getItem(TOKEN_KEY) || '';
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    let res;
    try {
      res = await fetch('/openapi.json', { headers, cache: 'no-store' });
    } catch (err) {
      $('doc').textContent = `The bridge did not answer: ${err}`;
      return;
    }
    if (res.status === 401) {
      if (token) sessionStorage.removeItem(TOKEN_KEY);
      $('token-message').textContent = token ? 'Token refused by the bridge (401). Try again.'
        : 'This bridge requires an access token (its auth_token parameter).';
      $('token-form').hidden = false;
      $('token-input').focus();
      $('doc').replaceChildren();
      return;
    }
    if (!res.ok) {
      $('doc').textContent = `/openapi.json: HTTP ${res.status} ${await res.text()}`;
      return;
    }
    $('token-form').hidden = true;
    render(await res.json());
  }

  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token-input').value.trim());
    load();
  });
  load();
})();
