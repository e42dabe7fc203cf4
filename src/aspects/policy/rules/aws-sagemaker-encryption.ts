import { block, blocks, isSet, isTrue } from '../attrs';
import { nonCompliant, PolicyRule } from '../types';
import { hasLocalStorage } from '../../../core/accelerators';

export const rule: PolicyRule = {
  id: 'aws-sagemaker-encryption',
  level: 'error',
  description: 'SageMaker endpoint configuration stores volumes or captured requests without a KMS key',
  fix: 'set kms_key_arn (skipped for instance types with local NVMe storage, where SageMaker rejects it and encrypts the instance store itself) '
    + 'and data_capture_config.kms_key_id when data capture is on',
  appliesTo: ['aws_sagemaker_endpoint_configuration'],
  check(el) {
    const problems: string[] = [];
    const variants = blocks(el.attrs.production_variants);
    const ebsBacked = variants.filter((v) => typeof v.instance_type === 'string' && !hasLocalStorage(v.instance_type));
    if (ebsBacked.length && !isSet(el.attrs.kms_key_arn)) problems.push(`kms_key_arn is not set for ${ebsBacked.map((v) => String(v.instance_type)).join(', ')}`);
    const capture = block(el.attrs.data_capture_config);
    if (capture && (capture.enable_capture === undefined || isTrue(capture.enable_capture)) && !isSet(capture.kms_key_id)) {
      problems.push('data_capture_config.kms_key_id is not set');
    }
    return problems.length ? nonCompliant(problems.join('; ')) : 'compliant';
  },
};
