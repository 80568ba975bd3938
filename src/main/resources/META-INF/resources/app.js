// Timbre web page: plain JavaScript on the public API only. The API key is entered once and kept in this
// tab's sessionStorage; every request sends it as "Authorization: Bearer <key>".
'use strict';

(() => {
  const KEY_STORAGE = 'timbre.apiKey';
  const PROBLEM_PREFIX = 'urn:timbre:problem:';
  const MAX_RECORD_SECONDS = 30;
  const MIN_PROMPT_SECONDS = 3;
  const READY_RETRY_MS = 5000;

  const $ = (id) => document.getElementById(id);

  let apiKey = null;
  let me = null;
  let speakers = [];

  // ============================================================================================ API

  /** An API error: the response's problem+json (RFC 9457), or a stand-in when the service did not answer. */
  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title);
      this.status = status;
      this.problem = problem;
      this.slug = (problem.type || '').startsWith(PROBLEM_PREFIX) ? problem.type.slice(PROBLEM_PREFIX.length) : null;
    }

    /** What to show: the problem's detail (written for the person who has to fix it), else its title. */
    get text() {
      let text = this.problem.detail || this.problem.title || `HTTP ${this.status}`;
      if (this.status === 503 && this.problem.retryAfter) {
        text += ` (Retry in ${this.problem.retryAfter} s.)`;
      }
      return text;
    }
  }

  async function readProblem(res) {
    let body = null;
    if ((res.headers.get('Content-Type') || '').includes('json')) {
      try {
        body = await res.json();
      } catch (ignored) {
        body = null;
      }
    }
    body = body && typeof body === 'object' ? body : {};
    return {
      type: body.type || 'about:blank',
      title: body.title || res.statusText || `HTTP ${res.status}`,
      status: body.status || res.status,
      detail: body.detail || '',
      errors: Array.isArray(body.errors) ? body.errors : [],
      retryAfter: res.headers.get('Retry-After'),
    };
  }

  /** fetch() with the key; resolves to the Response when it is 2xx, else rejects with an ApiError. */
  async function api(path, {method = 'GET', json, form, key = apiKey} = {}) {
    const headers = {Authorization: `Bearer ${key}`};
    let body;
    if (json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = json;
    } else if (form) {
      body = form;
    }
    let res;
    try {
      res = await fetch(path, {method, headers, body, cache: 'no-store'});
    } catch (e) {
      checkReadiness();
      throw new ApiError(0, {title: 'Service unreachable',
        detail: 'The service did not answer. Check that it is running and reachable, then try again.'});
    }
    if (res.ok) {
      return res;
    }
    const error = new ApiError(res.status, await readProblem(res));
    if (res.status === 401 && key === apiKey) {
      signOut(`The service refused the API key: ${error.text} Enter a valid key.`);
    } else if (res.status === 503) {
      checkReadiness();
    }
    throw error;
  }

  // ======================================================================================= errors

  /** Shows a message next to a control: the element "<id>-error", and aria-invalid on the control. */
  function setError(id, message) {
    const slot = $(`${id}-error`);
    if (slot) {
      slot.textContent = message;
    }
    const control = $(id);
    if (control) {
      control.setAttribute('aria-invalid', 'true');
      // A picker's file input carries the state too, so that screen readers hear it on the control itself.
      control.querySelectorAll('input[type=file]').forEach((input) => input.setAttribute('aria-invalid', 'true'));
    }
  }

  function clearErrors(container) {
    container.querySelectorAll('.field-error, .form-error').forEach((slot) => { slot.textContent = ''; });
    container.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  }

  /** Problem slugs of the API, by the form field they concern. */
  const SLUG_FIELDS = {
    'audio-invalid': 'audio', 'invalid-audio': 'audio', 'audio-too-short': 'audio', 'audio-too-long': 'audio',
    'audio-missing': 'audio',
    'name-missing': 'name', 'name-too-long': 'name',
    'prompt-text-missing': 'promptText', 'prompt-text-too-long': 'promptText',
    'text-missing': 'text', 'text-too-long': 'text', 'text-unusable': 'text',
    'no-speaker': 'speaker', 'speaker-not-found': 'speaker', 'not-found': 'speaker',
  };

  /**
   * Shows an API error next to the field it concerns (fields: API field name -> control id), else in the
   * form's own message slot. Focuses the first control in error, so keyboard users land on it.
   */
  function showProblem(error, fields, formErrorId, extra = {}) {
    if (error.status === 401) {
      return;   // signOut() has said it next to the key field
    }
    const targets = [];
    let field = SLUG_FIELDS[error.slug] || extra[error.slug] || (error.status === 409 ? extra.conflict : null);
    if (field && fields[field]) {
      targets.push([fields[field], error.text]);
    }
    for (const e of error.problem.errors || []) {
      const id = fields[String(e.field).split('.').pop()];
      if (id) {
        targets.push([id, `${e.field} ${e.message}`]);
      }
    }
    if (targets.length === 0) {
      $(formErrorId).textContent = error.text;
      return;
    }
    targets.forEach(([id, message]) => setError(id, message));
    focusControl(targets[0][0]);
  }

  function focusControl(id) {
    const el = $(id);
    if (!el) {
      return;
    }
    let target = el;
    if (el.matches('fieldset')) {
      // an audio picker: the file input when a file was chosen, else its first control (Record)
      const file = el.querySelector('input[type=file]');
      target = file && file.files && file.files.length ? file : el.querySelector('button, input');
    }
    if (target) {
      target.focus();
    }
  }

  // ==================================================================================== readiness

  let readyTimer = null;

  async function checkReadiness() {
    clearTimeout(readyTimer);
    const pill = $('service-status');
    const banner = $('ready-banner');
    let res;
    let body = null;
    try {
      res = await fetch('/q/health/ready', {cache: 'no-store'});
      body = await res.json();
    } catch (e) {
      pill.textContent = 'Service unreachable';
      pill.className = 'service-status down';
      banner.textContent = 'The service does not answer. Registration and synthesis will fail until it is back; '
          + `checking again every ${READY_RETRY_MS / 1000} s.`;
      banner.hidden = false;
      readyTimer = setTimeout(checkReadiness, READY_RETRY_MS);
      return;
    }
    const checks = Array.isArray(body && body.checks) ? body.checks : [];
    const pack = checks.find((c) => c.name === 'model-pack');
    if (res.ok && body.status === 'UP') {
      const d = (pack && pack.data) || {};
      pill.textContent = d.pack ? `Ready · pack ${d.pack}@${d.version} on ${d.device}` : 'Ready';
      pill.className = 'service-status ready';
      banner.hidden = true;
      $('noise-note-pack').hidden = d.pack !== 'tiny';
      return;
    }
    const down = checks.filter((c) => c.status !== 'UP')
        .map((c) => `${c.name}${c.data && c.data.error ? ` (${c.data.error})` : ''}`);
    pill.textContent = 'Not ready';
    pill.className = 'service-status down';
    banner.textContent = `The service is not ready yet${down.length ? `: ${down.join(', ')}` : ''}. Registration and `
        + `synthesis will fail until it is; checking again every ${READY_RETRY_MS / 1000} s.`;
    banner.hidden = false;
    readyTimer = setTimeout(checkReadiness, READY_RETRY_MS);
  }

  // ===================================================================================== API key

  async function signIn(key, restored) {
    clearErrors($('key-form'));
    $('key-submit').setAttribute('aria-disabled', 'true');
    try {
      const res = await api('/v1/me', {key});
      me = await res.json();
    } catch (e) {
      if (e.status === 401) {
        signOut(restored ? 'The saved API key is no longer valid. Enter your key.'
            : `This API key is not valid: ${e.text}`);
      } else {
        setError('api-key', `Could not check the key: ${e.text}`);
      }
      return;
    } finally {
      $('key-submit').removeAttribute('aria-disabled');
    }
    apiKey = key;
    sessionStorage.setItem(KEY_STORAGE, key);
    $('api-key').value = '';
    $('api-key').placeholder = 'Signed in: enter another key to switch user';
    $('whoami').textContent = `Signed in as ${me.name} (user ${me.id}).`;
    $('whoami').hidden = false;
    $('key-forget').hidden = false;
    $('signed-in').hidden = false;
    await loadSpeakers();
  }

  function signOut(message) {
    apiKey = null;
    me = null;
    speakers = [];
    sessionStorage.removeItem(KEY_STORAGE);
    $('signed-in').hidden = true;
    $('whoami').hidden = true;
    $('key-forget').hidden = true;
    $('api-key').placeholder = 'tmb_…';
    clearErrors($('key-form'));
    if (message) {
      setError('api-key', message);
      $('api-key').focus();
    }
  }

  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if ($('key-submit').getAttribute('aria-disabled') === 'true') {
      return;
    }
    const key = $('api-key').value.trim();
    if (!key) {
      clearErrors($('key-form'));
      setError('api-key', 'Enter the API key you got when your user was created.');
      $('api-key').focus();
      return;
    }
    signIn(key, false);
  });

  $('key-forget').addEventListener('click', () => {
    signOut(null);
    $('whoami').textContent = '';
    $('api-key').focus();
  });

  // ==================================================================================== speakers

  async function loadSpeakers() {
    $('speakers-error').textContent = '';
    try {
      const [meRes, listRes] = await Promise.all([api('/v1/me'), api('/v1/speakers')]);
      me = await meRes.json();
      speakers = await listRes.json();
    } catch (e) {
      showProblem(e, {}, 'speakers-error');
      return;
    }
    renderSpeakers();
  }

  function formatBytes(n) {
    if (n >= 1024 * 1024) {
      return `${(n / 1024 / 1024).toFixed(1)} MiB`;
    }
    return n >= 1024 ? `${Math.round(n / 1024)} KiB` : `${n} B`;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === 'className') {
        node.className = value;
      } else if (name === 'text') {
        node.textContent = value;
      } else if (value !== null && value !== undefined && value !== false) {
        node.setAttribute(name, value === true ? '' : value);
      }
    }
    children.forEach((c) => node.append(c));
    return node;
  }

  function renderSpeakers() {
    const list = $('speakers');
    list.replaceChildren();
    const currentId = me && me.currentSpeakerId;
    let currentName = null;
    for (const s of speakers) {
      const current = s.id === currentId;
      if (current) {
        currentName = s.name;
      }
      const name = el('div', {}, el('span', {className: 'name', text: s.name, id: `speaker-name-${s.id}`, tabindex: '-1'}));
      if (current) {
        name.append(el('span', {className: 'badge', text: 'Current'}));
      }
      const created = new Date(s.createdAt);
      const meta = el('div', {className: 'meta', text: [
        `“${s.promptText}”`,
        `${Number(s.promptSeconds).toFixed(1)} s recording`,
        `${formatBytes(s.featureBytes)} of features`,
        `pack ${s.pack}`,
        s.rebuildable ? null : 'imported (no recording)',
        `added ${created.toLocaleString()}`,
      ].filter(Boolean).join(' · ')});
      const actions = el('div', {className: 'actions'});
      if (!current) {
        const select = el('button', {type: 'button', className: 'secondary', 'data-action': 'select',
          'aria-label': `Make ${s.name} the current voice`, text: 'Make current'});
        select.addEventListener('click', () => selectSpeaker(s));
        actions.append(select);
      }
      const del = el('button', {type: 'button', className: 'secondary', 'data-action': 'delete',
        'aria-label': `Delete ${s.name}`, text: 'Delete'});
      del.addEventListener('click', () => confirmDelete(s, del));
      actions.append(del);
      list.append(el('li', {className: current ? 'speaker current' : 'speaker', 'data-speaker-id': s.id,
        'data-speaker-name': s.name, 'aria-current': current ? 'true' : null}, name, actions, meta));
    }
    $('speakers-empty').hidden = speakers.length > 0;
    $('clear-current').hidden = !currentId;
    $('current-voice-name').textContent = currentName || 'none yet (register a voice and make it current, or use zero-shot)';
  }

  async function selectSpeaker(s) {
    $('speakers-error').textContent = '';
    try {
      const res = await api('/v1/me/speaker', {method: 'PUT', json: JSON.stringify({speakerId: s.id})});
      me = await res.json();
    } catch (e) {
      showProblem(e, {}, 'speakers-error');
      return;
    }
    renderSpeakers();
    $('register-busy').textContent = '';
    $('speakers-status').textContent = `${s.name} is now the current voice.`;
    const name = $(`speaker-name-${s.id}`);
    if (name) {
      name.focus();
    }
  }

  $('clear-current').addEventListener('click', async () => {
    $('speakers-error').textContent = '';
    try {
      await api('/v1/me/speaker', {method: 'DELETE'});
    } catch (e) {
      showProblem(e, {}, 'speakers-error');
      return;
    }
    await loadSpeakers();
    $('speakers-status').textContent = 'No current voice: synthesis needs a speaker or zero-shot.';
    $('refresh-speakers').focus();
  });

  $('refresh-speakers').addEventListener('click', loadSpeakers);

  function confirmDelete(s, opener) {
    const dialog = $('confirm-delete');
    $('confirm-delete-text').textContent = `“${s.name}” and its stored recording and features will be removed. `
        + 'This cannot be undone.';
    const ok = $('confirm-delete-ok');
    const cancel = $('confirm-delete-cancel');
    const close = (value) => dialog.close(value);
    ok.onclick = () => close('delete');
    cancel.onclick = () => close('cancel');
    dialog.onclose = async () => {
      if (dialog.returnValue !== 'delete') {
        opener.focus();
        return;
      }
      try {
        await api(`/v1/speakers/${encodeURIComponent(s.id)}`, {method: 'DELETE'});
      } catch (e) {
        showProblem(e, {}, 'speakers-error');
        opener.focus();
        return;
      }
      await loadSpeakers();
      $('speakers-status').textContent = `Deleted ${s.name}.`;
      $('speakers-heading').focus();
    };
    dialog.returnValue = '';
    dialog.showModal();
    cancel.focus();
  }

  // ===================================================================================== recording

  /** A 16-bit PCM mono WAV file of the samples (floats in [-1, 1]). */
  function encodeWav(samples, sampleRate) {
    const buffer = new ArrayBuffer(44 + samples.length * 2);
    const v = new DataView(buffer);
    const text = (offset, s) => [...s].forEach((c, i) => v.setUint8(offset + i, c.charCodeAt(0)));
    text(0, 'RIFF');
    v.setUint32(4, 36 + samples.length * 2, true);
    text(8, 'WAVE');
    text(12, 'fmt ');
    v.setUint32(16, 16, true);
    v.setUint16(20, 1, true);               // PCM
    v.setUint16(22, 1, true);               // mono
    v.setUint32(24, sampleRate, true);
    v.setUint32(28, sampleRate * 2, true);  // bytes per second
    v.setUint16(32, 2, true);               // block align
    v.setUint16(34, 16, true);              // bits per sample
    text(36, 'data');
    v.setUint32(40, samples.length * 2, true);
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      v.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
    return new Blob([buffer], {type: 'audio/wav'});
  }

  /** Starts capturing the microphone as mono float samples; resolves to {sampleRate, stop(): Float32Array}. */
  async function startCapture(onChunk) {
    const stream = await navigator.mediaDevices.getUserMedia({audio: {
      channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
    const ctx = new AudioContext();
    try {
      const source = ctx.createMediaStreamSource(stream);
      const mute = ctx.createGain();
      mute.gain.value = 0;
      let node;
      if (ctx.audioWorklet && typeof AudioWorkletNode === 'function') {
        await ctx.audioWorklet.addModule('recorder-worklet.js');
        node = new AudioWorkletNode(ctx, 'timbre-recorder');
        node.port.onmessage = (event) => onChunk(event.data);
      } else {
        node = ctx.createScriptProcessor(4096, 1, 1);
        node.onaudioprocess = (event) => onChunk(new Float32Array(event.inputBuffer.getChannelData(0)));
      }
      source.connect(node);
      node.connect(mute);
      mute.connect(ctx.destination);   // keeps the graph pulling; nothing is heard
      await ctx.resume();
      return {
        sampleRate: ctx.sampleRate,
        stop() {
          source.disconnect();
          node.disconnect();
          stream.getTracks().forEach((t) => t.stop());
          ctx.close();
        },
      };
    } catch (e) {
      stream.getTracks().forEach((t) => t.stop());
      ctx.close();
      throw e;
    }
  }

  /**
   * The record/upload control of a form: the latest recording or chosen file is what gets sent.
   * take() gives {blob, filename} or null.
   */
  function makeAudioPicker(fieldset) {
    const id = fieldset.id;
    const part = (role) => fieldset.querySelector(`[data-role="${role}"]`);
    const recordButton = part('record');
    const stopButton = part('stop');
    const fileInput = part('file');
    const status = part('status');
    const preview = part('preview');
    const level = part('level');
    let chosen = null;
    let previewUrl = null;
    let capture = null;

    function clearFieldError() {
      $(`${id}-error`).textContent = '';
      fieldset.removeAttribute('aria-invalid');
      fileInput.removeAttribute('aria-invalid');
    }

    function choose(blob, filename, description) {
      chosen = {blob, filename};
      status.textContent = description;
      if (previewUrl) {
        URL.revokeObjectURL(previewUrl);
      }
      previewUrl = URL.createObjectURL(blob);
      preview.src = previewUrl;
      preview.hidden = false;
      preview.setAttribute('aria-label', `Listen to ${filename}`);
    }

    fileInput.addEventListener('change', async () => {
      clearFieldError();
      const file = fileInput.files && fileInput.files[0];
      if (!file) {
        return;
      }
      choose(file, file.name, `File: ${file.name} (${formatBytes(file.size)}).`);
      const seconds = await durationOf(file);
      if (seconds !== null && chosen && chosen.blob === file) {
        status.textContent = `File: ${file.name} (${formatBytes(file.size)}, ${seconds.toFixed(2)} s).`;
      }
    });

    async function start() {
      clearFieldError();
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.AudioContext) {
        setError(id, 'This page cannot use the microphone here: browsers allow it only on https or localhost. '
            + 'Upload a WAV file instead.');
        return;
      }
      const chunks = [];
      let frames = 0;
      try {
        capture = await startCapture((chunk) => {
          chunks.push(chunk);
          frames += chunk.length;
          let sum = 0;
          for (let i = 0; i < chunk.length; i++) {
            sum += chunk[i] * chunk[i];
          }
          level.value = Math.min(1, Math.sqrt(sum / chunk.length) * 4);
          if (capture && frames >= capture.sampleRate * MAX_RECORD_SECONDS) {
            stop();
          }
        });
      } catch (e) {
        capture = null;
        setError(id, e && e.name === 'NotAllowedError'
            ? 'Microphone access was refused. Allow it in the browser, or upload a WAV file instead.'
            : `No microphone could be opened (${e && e.message ? e.message : e}). Upload a WAV file instead.`);
        return;
      }
      capture.chunks = chunks;
      capture.frames = () => frames;
      recordButton.disabled = true;
      recordButton.classList.add('on');
      stopButton.disabled = false;
      stopButton.focus();
      level.hidden = false;
      const rate = capture.sampleRate;
      const tick = () => {
        status.textContent = `Recording… ${(frames / rate).toFixed(1)} s (at least ${MIN_PROMPT_SECONDS} s, `
            + `stops by itself at ${MAX_RECORD_SECONDS} s).`;
      };
      tick();
      capture.timer = setInterval(tick, 250);
    }

    function stop() {
      if (!capture) {
        return;
      }
      const c = capture;
      capture = null;
      clearInterval(c.timer);
      c.stop();
      const samples = new Float32Array(c.frames());
      let offset = 0;
      for (const chunk of c.chunks) {
        samples.set(chunk.subarray(0, Math.min(chunk.length, samples.length - offset)), offset);
        offset += chunk.length;
      }
      const blob = encodeWav(samples, c.sampleRate);
      const seconds = samples.length / c.sampleRate;
      fileInput.value = '';
      choose(blob, 'recording.wav', `Recorded ${seconds.toFixed(2)} s (${c.sampleRate} Hz, 16-bit mono WAV, `
          + `${formatBytes(blob.size)}).${seconds < MIN_PROMPT_SECONDS
            ? ` That is shorter than ${MIN_PROMPT_SECONDS} s: record again.` : ''}`);
      recordButton.disabled = false;
      recordButton.classList.remove('on');
      stopButton.disabled = true;
      level.hidden = true;
      level.value = 0;
      recordButton.focus();
    }

    recordButton.addEventListener('click', start);
    stopButton.addEventListener('click', stop);

    return {
      take: () => chosen,
      recording: () => capture !== null,
      reset() {
        stop();
        chosen = null;
        fileInput.value = '';
        if (previewUrl) {
          URL.revokeObjectURL(previewUrl);
          previewUrl = null;
        }
        preview.removeAttribute('src');
        preview.hidden = true;
        status.textContent = 'No recording yet.';
      },
    };
  }

  /** The duration of an audio file in seconds as the browser decodes it, or null if it cannot. */
  async function durationOf(blob) {
    try {
      const ctx = new OfflineAudioContext(1, 1, 48000);
      const audio = await ctx.decodeAudioData(await blob.arrayBuffer());
      return audio.duration;
    } catch (e) {
      return null;
    }
  }

  // ===================================================================================== register

  const registerPicker = makeAudioPicker($('reg-audio'));
  const REGISTER_FIELDS = {name: 'reg-name', promptText: 'reg-prompt-text', audio: 'reg-audio'};
  let registering = false;

  $('register-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    if (registering) {
      return;
    }
    const form = $('register-form');
    clearErrors(form);
    const name = $('reg-name').value.trim();
    const promptText = $('reg-prompt-text').value.trim();
    if (registerPicker.recording()) {
      setError('reg-audio', 'Stop the recording first.');
      focusControl('reg-audio');
      return;
    }
    const audio = registerPicker.take();
    const missing = [];
    if (!name) {
      missing.push(['reg-name', 'Give the voice a name.']);
    }
    if (!audio) {
      missing.push(['reg-audio', 'Record or upload a WAV file of 3 to 30 seconds.']);
    }
    if (!promptText) {
      missing.push(['reg-prompt-text', 'Type the words spoken in the recording.']);
    }
    if (missing.length) {
      missing.forEach(([id, message]) => setError(id, message));
      focusControl(missing[0][0]);
      return;
    }
    const body = new FormData();
    body.append('name', name);
    body.append('promptText', promptText);
    body.append('audio', audio.blob, audio.filename);
    registering = true;
    $('register-submit').setAttribute('aria-disabled', 'true');
    $('register-busy').textContent = 'Registering: computing the voice’s features…';
    let speaker;
    try {
      const res = await api('/v1/speakers', {method: 'POST', form: body});
      speaker = await res.json();
    } catch (e) {
      $('register-busy').textContent = '';
      showProblem(e, REGISTER_FIELDS, 'register-error', {conflict: 'name'});
      return;
    } finally {
      registering = false;
      $('register-submit').removeAttribute('aria-disabled');
    }
    form.reset();
    registerPicker.reset();
    await loadSpeakers();
    $('register-busy').textContent = `Registered “${speaker.name}” (${formatBytes(speaker.featureBytes)} of features).`
        + (me && me.currentSpeakerId ? '' : ' Make it current below to speak with it.');
  });

  // ======================================================================================== speak

  const zeroShotPicker = makeAudioPicker($('zs-audio'));
  let speaking = false;
  let resultUrl = null;
  let lastSamples = null;
  const history = [];

  function mode() {
    return $('mode-zero-shot').checked ? 'zero-shot' : 'current';
  }

  document.querySelectorAll('input[name=mode]').forEach((radio) => radio.addEventListener('change', () => {
    $('zero-shot-fields').hidden = mode() !== 'zero-shot';
  }));

  $('speak-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    if (speaking) {
      return;
    }
    const form = $('speak-form');
    clearErrors(form);
    const text = $('tts-text').value;
    const seedInput = $('tts-seed');
    const seedText = seedInput.value.trim();
    const seed = seedText === '' ? null : Number(seedText);
    const problems = [];
    if (!text.trim()) {
      problems.push(['tts-text', 'Type the text to speak.']);
    }
    if (seedInput.validity.badInput || (seed !== null && !Number.isSafeInteger(seed))) {
      problems.push(['tts-seed', 'The seed must be a whole number (or left empty).']);
    }
    const zeroShot = mode() === 'zero-shot';
    let request;
    if (zeroShot) {
      const promptText = $('zs-prompt-text').value.trim();
      const audio = zeroShotPicker.take();
      if (zeroShotPicker.recording()) {
        problems.push(['zs-audio', 'Stop the recording first.']);
      } else if (!audio) {
        problems.push(['zs-audio', 'Record or upload a WAV file of 3 to 30 seconds to clone from.']);
      }
      if (!promptText) {
        problems.push(['zs-prompt-text', 'Type the words spoken in the recording.']);
      }
      if (!problems.length) {
        const body = new FormData();
        body.append('text', text);
        body.append('promptText', promptText);
        body.append('audio', audio.blob, audio.filename);
        if (seed !== null) {
          body.append('seed', String(seed));
        }
        request = {method: 'POST', form: body};
      }
    } else {
      const json = {text};
      if (seed !== null) {
        json.seed = seed;
      }
      request = {method: 'POST', json: JSON.stringify(json)};
    }
    if (problems.length) {
      problems.forEach(([id, message]) => setError(id, message));
      focusControl(problems[0][0]);
      return;
    }
    speaking = true;
    $('speak-submit').setAttribute('aria-disabled', 'true');
    $('speak-busy').textContent = zeroShot ? 'Synthesizing zero-shot: computing features, then speech…'
        : 'Synthesizing…';
    try {
      const res = await api('/v1/tts', request);
      const blob = await res.blob();
      await showResult(text, blob, res.headers);
    } catch (e) {
      $('speak-busy').textContent = '';
      if (e instanceof ApiError) {
        const fields = zeroShot
            ? {text: 'tts-text', audio: 'zs-audio', promptText: 'zs-prompt-text', seed: 'tts-seed', speaker: 'tts-mode'}
            : {text: 'tts-text', seed: 'tts-seed', speaker: 'tts-mode', speakerId: 'tts-mode'};
        showProblem(e, fields, 'speak-error');
      } else {
        $('speak-error').textContent = `The audio could not be read: ${e.message}`;
      }
    } finally {
      speaking = false;
      $('speak-submit').removeAttribute('aria-disabled');
    }
  });

  // ================================================================================ reading preview

  const PREVIEW_DELAY_MS = 400;
  let previewTimer = null;
  let previewSeq = 0;

  /** Shows the segments synthesis will speak for the text (POST /v1/text/normalize), a moment after typing stops. */
  async function previewReading() {
    const text = $('tts-text').value;
    const seq = ++previewSeq;
    const list = $('tts-reading');
    const status = $('tts-reading-status');
    if (!text.trim() || !apiKey) {
      list.replaceChildren();
      $('tts-reading-language').textContent = '';
      status.textContent = 'Type some text to see how it will be read.';
      return;
    }
    try {
      const res = await api('/v1/text/normalize', {method: 'POST', json: JSON.stringify({text})});
      const reading = await res.json();
      if (seq !== previewSeq) {
        return;   // a newer text is being read
      }
      list.replaceChildren(...reading.segments.map((segment) => {
        const item = document.createElement('li');
        item.textContent = segment;
        return item;
      }));
      $('tts-reading-language').textContent = `(${reading.language})`;
      status.textContent = reading.segments.length === 1 ? 'One segment.'
          : `${reading.segments.length} segments, each synthesized on its own.`;
    } catch (e) {
      if (seq !== previewSeq) {
        return;
      }
      list.replaceChildren();
      $('tts-reading-language').textContent = '';
      status.textContent = e instanceof ApiError ? e.text : `No preview: ${e.message}`;
    }
  }

  $('tts-text').addEventListener('input', () => {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(previewReading, PREVIEW_DELAY_MS);
  });

  /** Reads a RIFF WAV file: its format and its first channel as floats. Throws on anything else. */
  function parseWav(buffer) {
    const v = new DataView(buffer);
    const tag = (offset) => String.fromCharCode(v.getUint8(offset), v.getUint8(offset + 1), v.getUint8(offset + 2),
        v.getUint8(offset + 3));
    if (buffer.byteLength < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') {
      throw new Error('not a WAV file');
    }
    let format = null;
    let offset = 12;
    while (offset + 8 <= buffer.byteLength) {
      const id = tag(offset);
      let size = v.getUint32(offset + 4, true);
      const start = offset + 8;
      if (id === 'fmt ') {
        format = {code: v.getUint16(start, true), channels: v.getUint16(start + 2, true),
          sampleRate: v.getUint32(start + 4, true), bits: v.getUint16(start + 14, true)};
      } else if (id === 'data') {
        if (!format || format.code !== 1 || format.bits !== 16) {
          throw new Error('expected 16-bit PCM');
        }
        size = Math.min(size, buffer.byteLength - start);   // 0xFFFFFFFF: until the end (streaming header)
        const frames = Math.floor(size / (2 * format.channels));
        const samples = new Float32Array(frames);
        for (let i = 0; i < frames; i++) {
          samples[i] = v.getInt16(start + i * 2 * format.channels, true) / 32768;
        }
        return {...format, samples, seconds: frames / format.sampleRate};
      }
      offset = start + size + (size % 2);
    }
    throw new Error('no data chunk');
  }

  /** Server-Timing: "features;dur=1.2, llm;dur=3.4, ..." -> [[name, ms], ...] */
  function parseServerTiming(header) {
    return (header || '').split(',').map((part) => part.trim()).filter(Boolean).map((part) => {
      const [name, ...params] = part.split(';').map((p) => p.trim());
      const dur = params.find((p) => p.startsWith('dur='));
      return [name, dur ? Number(dur.slice(4)) : NaN];
    });
  }

  const STAGES = {
    features: 'Speaker features',
    queue: 'Waiting to join the batch',
    llm: 'LLM: text to speech tokens',
    flow: 'Flow: tokens to mel frames',
    vocoder: 'Vocoder: mel to waveform',
    total: 'Total',
  };

  const SOURCES = {
    'memory': 'cached in memory: nothing was computed for the voice.',
    'file': 'read from the speaker’s feature file (not in the memory cache).',
    'extracted': 'recomputed from the stored recording (the feature file was missing, damaged or from another '
        + 'model pack) and the file was repaired.',
    'zero-shot': 'computed from the recording sent with this request; nothing is stored.',
  };

  async function showResult(text, blob, headers) {
    const wav = parseWav(await blob.arrayBuffer());
    if (resultUrl) {
      URL.revokeObjectURL(resultUrl);
    }
    resultUrl = URL.createObjectURL(new Blob([blob], {type: 'audio/wav'}));
    const audio = $('result-audio');
    audio.src = resultUrl;
    const download = $('result-download');
    download.href = resultUrl;
    download.download = `timbre-${new Date().toISOString().replace(/[:.]/g, '-')}.wav`;

    const source = headers.get('X-Timbre-Speaker-Source') || 'unknown';
    $('result-source').textContent = source;
    $('result-source-help').textContent = SOURCES[source] || '';
    const seed = headers.get('X-Timbre-Seed');
    const segments = headers.get('X-Timbre-Segments');
    $('result-summary').textContent = [
      `${wav.seconds.toFixed(2)} s`,
      `${wav.sampleRate} Hz, ${wav.bits}-bit ${wav.channels === 1 ? 'mono' : `${wav.channels} channels`}`,
      `${formatBytes(blob.size)}`,
      seed !== null ? `seed ${seed}` : null,
      segments !== null ? `${segments} segment${segments === '1' ? '' : 's'}` : null,
    ].filter(Boolean).join(' · ');

    const timings = parseServerTiming(headers.get('Server-Timing'));
    const total = (timings.find(([name]) => name === 'total') || [null, NaN])[1];
    const body = $('timings-body');
    body.replaceChildren();
    if (!timings.length) {
      body.append(el('tr', {}, el('td', {colspan: '3', text: 'The service sent no Server-Timing header.'})));
    }
    for (const [name, ms] of timings) {
      const bar = el('span');
      bar.style.width = `${total > 0 && Number.isFinite(ms) ? Math.max(0.2, Math.min(100, (ms / total) * 100)) : 0}%`;
      body.append(el('tr', {className: name === 'total' ? 'total' : null, 'data-stage': name},
          el('th', {scope: 'row', text: STAGES[name] || name}),
          el('td', {className: 'num', text: Number.isFinite(ms) ? ms.toFixed(ms < 10 ? 2 : 1) : '?'}),
          el('td', {className: 'bar', 'aria-hidden': 'true'}, bar)));
    }

    const featuresMs = (timings.find(([name]) => name === 'features') || [null, NaN])[1];
    history.unshift({text, source, featuresMs, total, seconds: wav.seconds});
    history.length = Math.min(history.length, 8);
    $('history-body').replaceChildren(...history.map((h) => el('tr', {},
        el('td', {text: h.text, title: h.text}),
        el('td', {text: h.source}),
        el('td', {className: 'num', text: Number.isFinite(h.featuresMs) ? h.featuresMs.toFixed(2) : '?'}),
        el('td', {className: 'num', text: Number.isFinite(h.total) ? h.total.toFixed(1) : '?'}),
        el('td', {className: 'num', text: h.seconds.toFixed(2)}))));

    $('result').hidden = false;
    lastSamples = wav;
    drawWaveform();
    $('speak-busy').textContent = `Done: ${wav.seconds.toFixed(2)} s of audio; speaker features ${source}`
        + `${Number.isFinite(total) ? `, ${total.toFixed(0)} ms in all` : ''}. Play or download it below.`;
  }

  /** Min/max of the samples per pixel column, with a time axis. */
  function drawWaveform() {
    const canvas = $('waveform');
    if (!lastSamples || canvas.clientWidth === 0) {
      return;
    }
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(canvas.clientWidth * ratio);
    const height = Math.round(canvas.clientHeight * ratio);
    canvas.width = width;
    canvas.height = height;
    const g = canvas.getContext('2d');
    g.fillStyle = '#0f1620';
    g.fillRect(0, 0, width, height);
    const {samples, seconds} = lastSamples;
    const axis = 16 * ratio;
    const mid = (height - axis) / 2;
    // Scaled to the peak, so that quiet audio is visible too; the peak level is written in the corner.
    let peak = 0;
    for (let i = 0; i < samples.length; i++) {
      peak = Math.max(peak, Math.abs(samples[i]));
    }
    const scale = peak > 0 ? 0.95 / peak : 1;
    g.strokeStyle = '#2c3a4d';
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(0, mid);
    g.lineTo(width, mid);
    g.stroke();
    g.strokeStyle = '#6fa8ff';
    g.beginPath();
    const perColumn = samples.length / width;
    for (let x = 0; x < width; x++) {
      const from = Math.floor(x * perColumn);
      const to = Math.max(from + 1, Math.floor((x + 1) * perColumn));
      let lo = 1;
      let hi = -1;
      for (let i = from; i < to && i < samples.length; i++) {
        lo = Math.min(lo, samples[i]);
        hi = Math.max(hi, samples[i]);
      }
      if (hi < lo) {
        continue;
      }
      g.moveTo(x + 0.5, mid - hi * scale * mid);
      g.lineTo(x + 0.5, mid - lo * scale * mid + 1);
    }
    g.stroke();
    g.fillStyle = '#9fb0c4';
    g.font = `${11 * ratio}px system-ui, sans-serif`;
    g.textBaseline = 'bottom';
    const step = seconds > 10 ? 2 : seconds > 4 ? 1 : seconds > 1.5 ? 0.5 : 0.25;
    for (let t = 0; t <= seconds + 1e-9; t += step) {
      const x = (t / seconds) * width;
      g.fillRect(x, height - axis, 1 * ratio, 4 * ratio);
      g.textAlign = t === 0 ? 'left' : x > width - 30 * ratio ? 'right' : 'center';
      g.fillText(`${Number(t.toFixed(2))} s`, Math.min(x + (t === 0 ? 2 * ratio : 0), width), height);
    }
    g.textAlign = 'right';
    g.textBaseline = 'top';
    g.fillText(peak > 0 ? `peak ${(20 * Math.log10(peak)).toFixed(1)} dBFS, drawn to full height` : 'silence',
        width - 4 * ratio, 4 * ratio);
    canvas.dataset.samples = String(samples.length);
    canvas.setAttribute('aria-label', `Waveform of the synthesized audio, ${seconds.toFixed(2)} s long`);
  }

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawWaveform, 100);
  });

  // ========================================================================================= start

  checkReadiness();
  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) {
    signIn(saved, true);
  } else {
    $('api-key').focus();
  }
})();
