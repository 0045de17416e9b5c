export const NODE_STAND_INS: RegExp;
