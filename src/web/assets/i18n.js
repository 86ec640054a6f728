// Words for the console, English and Chinese: the UI, decision reasons and door events.
export const STRINGS = {
  en: {
    login_title: 'Log in to the door', user: 'User', password: 'Password', login: 'Log in', logout: 'Log out',
    tab_dashboard: 'Doors', tab_live: 'Live', tab_journal: 'Journal', tab_users: 'People', tab_cloud: 'Cloud', tab_system: 'System',
    live_hint: 'Decisions and alarms as they happen.', from: 'From', to: 'To', person: 'Person', door: 'Door', decision: 'Decision', reason: 'Reason',
    any: 'any', granted: 'granted', denied: 'denied', search: 'Search', csv: 'Download CSV', time: 'Time', more: 'More',
    search_people: 'Name, userid or card', sync_now: 'Sync now', held: 'Held pass records', configuration: 'Configuration',
    open: 'Open', lock: 'Lock', apply: 'Set mode', until_changed: 'until changed', min15: '15 minutes', h1: '1 hour', h8: '8 hours',
    locked: 'locked', unlocked: 'unlocked', contact_open: 'open', contact_closed: 'closed', contact_unknown: 'no contact',
    mode_normal: 'normal', mode_passage: 'passage (held open)', mode_lockdown: 'lockdown', alarm: 'ALARM', readers: 'Readers',
    recent: 'Last decisions', none: 'none', layer_cloud: 'cloud', layer_local: 'local', cards: 'Cards', rules: 'Pass rules',
    validity: 'Valid', blocked: 'Blocked', block: 'Block', unblock: 'Unblock', link: 'Cloud link', since: 'Since', version: 'Version',
    directory: 'Directory', last_sync: 'Last full sync', skew: 'Clock skew', outbox: 'Outbox', requeue: 'Requeue', discard: 'Discard',
    uptime: 'Uptime', users: 'People', healthy: 'Healthy', storage: 'Storage', discard_reason: 'Why discard these records?',
    done: 'Done', wrong_login: 'Wrong user or password', no_cloud: 'No cloud configured', no_access: 'Your role cannot do this',
    every_day: 'every day', days: 'days', by: 'by', at_door: 'at', opened_by_you: 'Door opened', mode_set: 'Mode set',
    decided_by: 'Decided by', type: 'Type',
  },
  zh: {
    login_title: '登录门禁', user: '用户', password: '密码', login: '登录', logout: '退出',
    tab_dashboard: '门', tab_live: '实时', tab_journal: '记录', tab_users: '人员', tab_cloud: '云端', tab_system: '系统',
    live_hint: '实时显示通行决定和报警。', from: '开始', to: '结束', person: '人员', door: '门', decision: '结果', reason: '原因',
    any: '全部', granted: '允许', denied: '拒绝', search: '查询', csv: '下载 CSV', time: '时间', more: '更多',
    search_people: '姓名、用户 ID 或卡号', sync_now: '立即同步', held: '暂缓的通行记录', configuration: '配置',
    open: '开门', lock: '锁门', apply: '设置模式', until_changed: '直到更改', min15: '15 分钟', h1: '1 小时', h8: '8 小时',
    locked: '已锁', unlocked: '已开锁', contact_open: '门开', contact_closed: '门关', contact_unknown: '无门磁',
    mode_normal: '正常', mode_passage: '常开', mode_lockdown: '封锁', alarm: '报警', readers: '读头',
    recent: '最近通行', none: '无', layer_cloud: '云端', layer_local: '本地', cards: '卡号', rules: '通行规则',
    validity: '有效期', blocked: '已禁用', block: '禁用', unblock: '解除禁用', link: '云端连接', since: '自', version: '版本',
    directory: '名单', last_sync: '上次全量同步', skew: '时钟偏差', outbox: '待上传', requeue: '重新排队', discard: '丢弃',
    uptime: '运行时间', users: '人员', healthy: '正常', storage: '存储', discard_reason: '为什么丢弃这些记录？',
    done: '完成', wrong_login: '用户名或密码错误', no_cloud: '未配置云端', no_access: '您的角色无权执行此操作',
    every_day: '每天', days: '天', by: '操作人', at_door: '于', opened_by_you: '已开门', mode_set: '模式已设置',
    decided_by: '决定来源', type: '类型',
  },
};

export const REASONS = {
  en: {
    rule_match: 'matched a pass rule', default_allow: 'allowed by default for their type', remote_open: 'opened remotely from the cloud', exit_request: 'exit button',
    operator_open: 'opened by an operator', lockdown_override: 'passes during lockdown', malformed: 'unreadable code', unsupported_version: 'code of an unsupported version',
    unsupported_type: 'code of an unsupported kind', bad_signature: 'forged or damaged code', expired: 'code expired', not_yet_valid: 'code not valid yet',
    replayed: 'code already used', unknown_user: 'unknown person or card', no_key: 'no key for this person', bad_key: 'unusable key for this person',
    type_mismatch: 'code type does not match the person', credential_conflict: 'card claimed by more than one person', outside_schedule: 'outside their pass hours',
    rule_not_in_force: 'pass rule not in force yet', invalid_rules: 'their pass rules are invalid', default_deny: 'not allowed by default for their type',
    lockdown: 'door in lockdown', credential_not_allowed: 'this reader may not present that', store_unavailable: 'directory unavailable',
    holiday: 'closed on holidays', anti_passback: 'passed too recently', awaiting_second_person: 'waiting for a second person', interlock: 'another door of the interlock is open',
    blocked: 'blocked', outside_validity: 'outside their validity', door_not_allowed: 'not allowed at this door', pin_required: 'PIN needed', wrong_pin: 'wrong PIN',
  },
  zh: {
    rule_match: '符合通行规则', default_allow: '按人员类型默认允许', remote_open: '云端远程开门', exit_request: '出门按钮',
    operator_open: '管理员开门', lockdown_override: '封锁期间特许通行', malformed: '无法识别的码', unsupported_version: '不支持的码版本',
    unsupported_type: '不支持的码类型', bad_signature: '签名无效（伪造或损坏）', expired: '码已过期', not_yet_valid: '码尚未生效',
    replayed: '码已被使用', unknown_user: '未知人员或卡', no_key: '该人员无密钥', bad_key: '该人员密钥不可用',
    type_mismatch: '码类型与人员不符', credential_conflict: '该卡属于多人', outside_schedule: '不在通行时间内',
    rule_not_in_force: '通行规则尚未生效', invalid_rules: '通行规则无效', default_deny: '按人员类型默认禁止',
    lockdown: '门处于封锁状态', credential_not_allowed: '该读头不允许此类凭证', store_unavailable: '名单暂不可用',
    holiday: '节假日关闭', anti_passback: '反潜回：刚刚通过', awaiting_second_person: '等待第二人', interlock: '互锁的另一扇门未关',
    blocked: '已禁用', outside_validity: '不在有效期内', door_not_allowed: '无权通过此门', pin_required: '需要密码', wrong_pin: '密码错误',
  },
};

export const EVENTS = {
  en: {
    contact_open: 'door opened', contact_closed: 'door closed', forced_open: 'door forced open', held_open_prealarm: 'door open too long (warning)', held_open: 'door held open',
    alarm_cleared: 'alarm cleared', relocked_on_close: 'relocked on close', reader_claim_refused: 'reader claimed what it may not', reader_flood: 'reader flooding',
    storage_failure: 'disk failure', storage_recovered: 'disk recovered', disk_low: 'disk space low', disk_ok: 'disk space ok', duress: 'DURESS',
    mode_changed: 'mode changed', anti_passback_violation: 'anti-passback violation', operator_action: 'operator action',
  },
  zh: {
    contact_open: '门已打开', contact_closed: '门已关闭', forced_open: '门被强行打开', held_open_prealarm: '门开太久（预警）', held_open: '门长时间未关',
    alarm_cleared: '报警解除', relocked_on_close: '关门后重新上锁', reader_claim_refused: '读头提交了不允许的凭证', reader_flood: '读头刷卡过频',
    storage_failure: '磁盘故障', storage_recovered: '磁盘恢复', disk_low: '磁盘空间不足', disk_ok: '磁盘空间正常', duress: '胁迫报警',
    mode_changed: '模式已更改', anti_passback_violation: '反潜回违规', operator_action: '操作记录',
  },
};
