export const orders = {
  steps: [{ service: 'shop', operation: 'listOrders', dataPath: undefined }],
};
